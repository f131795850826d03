"""The docstring examples of the emulator's pure helpers hold."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from kube_emulator import (
    admission,
    clock,
    dra,
    jobs,
    quantities,
    resources,
    scheduling,
    selectors,
)


@pytest.mark.parametrize(
    "module",
    [admission, clock, dra, jobs, quantities, resources, scheduling, selectors],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
