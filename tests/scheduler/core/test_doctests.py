"""The examples in the core's docstrings are true."""

from __future__ import annotations

import doctest
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from scheduler.core import fairshare
from scheduler.sim import metrics, simulator


def _source(module: ModuleType) -> ModuleType:
    """``module`` as its Python source: a compiled core module (``scripts/build_core.py``)
    keeps no docstrings to run."""
    if str(module.__file__).endswith(".py"):
        return module
    name = module.__name__.rsplit(".", 1)[-1]
    source = Path(__file__).resolve().parents[3] / "scheduler" / "core" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_source", source)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.mark.parametrize("module", [fairshare, metrics, simulator], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(_source(module))
    assert result.attempted > 0
    assert result.failed == 0
