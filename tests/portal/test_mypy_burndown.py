"""The burn-down check's verdicts (scripts/mypy_burndown.py), without running mypy."""

import importlib.util
import sys
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[2] / "scripts" / "mypy_burndown.py"
_spec = importlib.util.spec_from_file_location("mypy_burndown", _path)
assert _spec and _spec.loader
burndown = importlib.util.module_from_spec(_spec)
sys.modules["mypy_burndown"] = burndown  # dataclasses look their module up
_spec.loader.exec_module(burndown)

OUTPUT = [
    "scheduler/views.py:51: error: Argument 1 has incompatible type  [arg-type]",
    "scheduler/views.py:52: note: See the docs",
    "scheduler/views.py:60: error: Another one  [misc]",
    "portal/api/__init__.py:3: error: Something  [misc]",
]


def test_errors_are_counted_per_module_notes_aside():
    assert burndown.count_errors(OUTPUT) == {"scheduler.views": 2, "portal.api": 1}


def test_the_list_round_trips():
    text = burndown.render_list({"b.c": 2, "a": 1, "gone": 0})
    assert burndown.parse_list(text) == {"a": 1, "b.c": 2}


def test_a_malformed_line_is_refused():
    with pytest.raises(ValueError, match="module: count"):
        burndown.parse_list("scheduler.views 3\n")


def test_equal_counts_pass():
    assert burndown.compare({"scheduler.views": 2}, {"scheduler.views": 2}).ok


def test_a_grown_count_fails():
    verdict = burndown.compare({"scheduler.views": 1}, {"scheduler.views": 2})
    assert not verdict.ok and verdict.grown == {"scheduler.views": (1, 2)}


def test_a_new_module_fails():
    verdict = burndown.compare({}, {"portal.views": 1})
    assert not verdict.ok and verdict.new == {"portal.views": 1}


def test_a_strict_package_may_have_no_error_listed_or_not():
    assert burndown.compare({}, {"scheduler.core.policy": 1}).strict
    assert burndown.compare({"karimasu_client": 1}, {"karimasu_client": 1}).strict
    assert burndown.compare({}, {"scheduler.corex": 1}).new  # a prefix is not a package


def test_a_shrunk_count_passes_and_is_reported():
    verdict = burndown.compare({"scheduler.views": 3, "portal.views": 1}, {"scheduler.views": 2})
    assert verdict.ok
    assert verdict.shrunk == {"scheduler.views": (3, 2), "portal.views": (1, 0)}
