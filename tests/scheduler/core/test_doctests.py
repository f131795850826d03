"""The examples in the core's docstrings are true."""

from __future__ import annotations

import doctest

import pytest

from scheduler.core import fairshare
from scheduler.sim import metrics, simulator


@pytest.mark.parametrize("module", [fairshare, metrics, simulator], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
