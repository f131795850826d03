"""The cycle's output: what to do now, and why every other job waits.

Decisions carry ids, not rows, so the services layer can apply them idempotently and
serialize them as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    """Why a queued job was not admitted in this cycle (shown to users as is)."""

    QUOTA = "quota"  # beyond the team's guaranteed GPUs and borrowing is off or at its limit
    BUDGET = "budget"  # the team's weekly GPU-hour budget would be exceeded
    NO_MODEL = "no-model"  # no schedulable node has an acceptable GPU model
    TOO_BIG = "too-big"  # no schedulable node could ever hold it (GPUs, CPU or memory)
    NO_NODES = "no-nodes"  # the cluster has no schedulable node at all (yet)
    RESERVED = "reserved"  # it would fit now but for bookings held by others
    USER_CAP = "user-cap"  # the user's concurrent-GPU cap
    SWEEP_CAP = "sweep-cap"  # its sweep already runs as many jobs as its parallelism allows
    BEHIND = "behind"  # waits for GPUs behind N higher-ranked jobs also waiting for GPUs
    CAPACITY = "capacity"  # first in line; waits for running jobs to end
    PREEMPTING = "preempting"  # victims were told to stop; it starts when they are gone


#: The reasons of jobs that wait for GPUs (not held by a gate): each stands in the way of
#: every job ranked below it that also waits for GPUs (``Waiting.ahead`` counts them).
WAITING_FOR_GPUS = frozenset({Reason.CAPACITY, Reason.BEHIND, Reason.RESERVED, Reason.PREEMPTING})
#: The detail of a job waiting behind others for GPUs: how many is ``Waiting.ahead`` (a
#: number apart from the text, so a cycle that only shifts the line changes no text).
BEHIND_DETAIL = "behind other jobs of higher rank"


class PreemptReason(StrEnum):
    RECLAIM = "reclaim"  # the lender wants its guaranteed GPUs back from borrowed work
    PRIORITY = "priority"  # a job of a higher priority class needs the GPUs


@dataclass(frozen=True, slots=True)
class Admit:
    """Start ``job_id`` on ``node`` with ``gpu_indices``; ``borrowed`` if beyond guarantee.

    A gang (``QueuedJob.nodes`` > 1) lists every pod's ``(node, GPU indices)`` in
    ``placements``, pod 0 first (it is also ``node``/``gpu_indices``); all start or none.
    Single-node admits leave it empty.
    """

    job_id: str
    node: str
    gpu_indices: tuple[int, ...]
    borrowed: bool
    placements: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def pods(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Every pod's ``(node, GPU indices)``: one for a single-node job."""
        return self.placements or ((self.node, self.gpu_indices),)


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop ``job_id`` (SIGTERM, then kill after ``grace_s``) and requeue it (attempt + 1)."""

    job_id: str
    reason: PreemptReason
    by_job: str
    grace_s: float


@dataclass(frozen=True, slots=True)
class ReleaseReservation:
    """End booking ``booking_id`` early or mark it over; ``reason`` is "ended" or "no-show"."""

    booking_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """A job left in the queue: why, where (1-based ``position`` among waiting jobs in rank
    order; ``ahead``: how many of the jobs ranked above it wait for GPUs, not held by a
    gate, i.e. stand in its way) and when it is expected to start (``eta``, None when
    unknown, e.g. blocked by a quota or budget rather than by GPUs)."""

    job_id: str
    reason: Reason
    detail: str
    position: int
    ahead: int
    eta: float | None
    planned_node: str | None = None


class _Unfrozen:
    """``Waiting``'s slot layout without the freeze: filled by a plain ``__init__``, then
    given ``Waiting`` as its class (same slots, so CPython allows the assignment)."""

    __slots__ = Waiting.__slots__

    def __init__(
        self,
        job_id: str,
        reason: Reason,
        detail: str,
        position: int,
        ahead: int,
        eta: float | None,
        planned_node: str | None,
    ) -> None:
        self.job_id = job_id
        self.reason = reason
        self.detail = detail
        self.position = position
        self.ahead = ahead
        self.eta = eta
        self.planned_node = planned_node


#: A waiting job as the cycle leaves it: (job id, reason, detail, planned start or None,
#: planned node or None); its position is its index + 1 in ``CycleResult.rows``.
Row = tuple[str, Reason, str, float | None, str | None]


def ahead_counts(rows: Iterable[Row]) -> list[int]:
    """For each row, how many rows before it wait for GPUs (``WAITING_FOR_GPUS``): those
    held by a gate keep their place in line but stand in no one's way."""
    counts, ahead, for_gpus = [], 0, WAITING_FOR_GPUS
    for row in rows:
        counts.append(ahead)
        if row[1] in for_gpus:
            ahead += 1
    return counts


def waiting_rows(rows: Iterable[Row]) -> tuple[Waiting, ...]:
    """``Waiting(job_id, reason, detail, i + 1, ahead, eta, planned_node)`` for the ``i``-th
    row, ``ahead`` from ``ahead_counts``.

    The same frozen objects as the constructor makes, several times faster: a frozen
    dataclass sets each field through ``object.__setattr__``, costly for ~10,000 rows;
    here each row is built unfrozen and then takes ``Waiting`` as its class.
    """
    rows = tuple(rows)
    out = []
    for i, ((job, why, text, at, where), ahead) in enumerate(
        zip(rows, ahead_counts(rows), strict=True)
    ):
        w = _Unfrozen(job, why, text, i + 1, ahead, at, where)
        w.__class__ = Waiting  # type: ignore[assignment]
        out.append(w)
    return tuple(out)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class CycleResult:
    """Everything one cycle decided, in rank order within each kind.

    The waiting jobs are ``rows`` (plain tuples, what the cycle made); ``waiting`` gives
    them as ``Waiting`` objects, built on first use: the services layer and the simulator
    read the rows, and building ~10,000 objects they would not read was a twentieth of a
    cycle.
    """

    admitted: tuple[Admit, ...]
    preempted: tuple[Preempt, ...]
    released: tuple[ReleaseReservation, ...]
    rows: tuple[Row, ...]
    _waiting: tuple[Waiting, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def waiting(self) -> tuple[Waiting, ...]:
        if self._waiting is None:
            object.__setattr__(self, "_waiting", waiting_rows(self.rows))
        return self._waiting  # type: ignore[return-value]

    def waiting_by_id(self) -> dict[str, Waiting]:
        return {w.job_id: w for w in self.waiting}
