"""The fast builders of the core's row objects (``snapshot.queued_job``,
``decisions.waiting_rows``) make exactly the objects the dataclass constructors make:
equal, same hash, still frozen, and every field in the dataclass's order (a field added to
the dataclass but not to the builder fails here, not silently in a cycle)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from scheduler.core.decisions import Reason, Waiting, _Unfrozen, waiting_rows
from scheduler.core.snapshot import QueuedJob, _QueuedJobRow, queued_job

VALUES = (
    "42", "vision", "alice", 2, 3600.0, 1.8e9, frozenset({"H100"}), 4000, 8192, 10, False, 1,
    "7", 3, 2,
)  # fmt: skip


def _params(cls: type) -> list[str]:
    return list(inspect.signature(cls.__init__).parameters)[1:]


@pytest.mark.parametrize(("frozen", "builder"), [(QueuedJob, _QueuedJobRow), (Waiting, _Unfrozen)])
def test_builders_take_every_field_in_order(frozen: type, builder: type) -> None:
    names = [f.name for f in dataclasses.fields(frozen)]
    assert _params(builder) == names
    assert list(builder.__slots__) == names


def test_queued_job_is_the_constructors_object() -> None:
    made, built = QueuedJob(*VALUES), queued_job(*VALUES)
    assert type(built) is QueuedJob
    assert built == made and hash(built) == hash(made)
    assert [getattr(built, f.name) for f in dataclasses.fields(QueuedJob)] == list(VALUES)
    assert built.total_gpus == 4 and built.gpu_seconds == 4 * 3600.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.gpus = 8  # type: ignore[misc]
    assert queued_job(*VALUES[:-1], 1) != made  # a field differs: not equal


def test_waiting_rows_are_the_constructors_objects() -> None:
    rows = waiting_rows(
        [
            ("1", Reason.BEHIND, "b", None, None),
            ("2", Reason.QUOTA, "q", 5.0, "n1"),
            ("3", Reason.RESERVED, "r", None, None),
            ("4", Reason.CAPACITY, "c", None, None),
        ]
    )
    # ``ahead``: the rows above that wait for GPUs (the quota-held one stands in no one's way)
    assert rows == (
        Waiting("1", Reason.BEHIND, "b", 1, 0, None, None),
        Waiting("2", Reason.QUOTA, "q", 2, 1, 5.0, "n1"),
        Waiting("3", Reason.RESERVED, "r", 3, 1, None, None),
        Waiting("4", Reason.CAPACITY, "c", 4, 2, None, None),
    )
    assert all(type(w) is Waiting for w in rows)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].position = 3  # type: ignore[misc]
