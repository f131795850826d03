"""The cycle's input: a frozen picture of the cluster, the queue and the policy at ``now``.

Times are seconds since the epoch as ``float`` (the services layer converts datetimes); GPU
counts are whole GPUs; CPU is in millicores and memory in MiB, as Kubernetes counts them.
Nothing here reads a clock: ``Snapshot.now`` is the only "now" the core knows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

DAY_S = 24 * 3600.0
WEEK_S = 7 * DAY_S


class Packing(StrEnum):
    """How a node is chosen among those a job fits on (see ``placement``).

    Best-fit is the default. On the Alibaba openb trace (7,255 pods that ran, fractional GPUs
    rounded up, every 32nd node: 38 nodes / 187 GPUs, arrivals 8x denser, default policy)
    best-fit averaged 27 s of queueing against worst-fit's 17,035 s; worst-fit spread 1-GPU
    pods over the 8-GPU nodes so 8-GPU pods waited up to the end of the trace (max 9.2e6 s vs
    1.3e5 s), and on average 74% of free GPUs were unusable by the waiting head against 43%
    (``benchmarks/scheduler_cycle.py`` reruns it on the first 4,000 pods).
    """

    BEST_FIT = "best-fit"  # the node left with the fewest free GPUs: keeps whole nodes whole
    WORST_FIT = "worst-fit"  # the node left with the most free GPUs: spreads load


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU of a node; ``foreign_busy`` is telemetry seeing a process Karimasu didn't start."""

    index: int
    uuid: str = ""
    healthy: bool = True
    foreign_busy: bool = False

    @property
    def usable(self) -> bool:
        return self.healthy and not self.foreign_busy


@dataclass(frozen=True, slots=True)
class Node:
    """A GPU server; only ready, uncordoned nodes receive new work."""

    name: str
    gpu_model: str
    gpus: tuple[Gpu, ...]
    cpu_milli: int = 64_000
    memory_mib: int = 512 * 1024
    cordoned: bool = False
    ready: bool = True
    topology: str = ""  # rack/switch label: a gang's nodes are taken from one group first

    @property
    def schedulable(self) -> bool:
        return self.ready and not self.cordoned


@dataclass(frozen=True, slots=True)
class Allocation:
    """A running (admitted) job and the GPUs it holds.

    ``expected_end`` is ``started_at + max_runtime_s`` (the Kubernetes deadline); a job already
    told to stop (``terminating_until`` set) holds its GPUs until then and no longer counts
    against its team's quota. A multi-node job (a gang) lists every pod's ``(node, GPU
    indices)`` in ``placements``, the first being ``node``/``gpu_indices``; a single-node job
    leaves it empty. ``cpu_milli``/``memory_mib`` are per pod. ``preempted_for``: for a job
    still terminating, the id of the queued job it was stopped for; while that job still
    waits, the GPUs being freed are reserved for it (see ``cycle.plan_cycle``). A victim
    whose grace is over (``terminating_until`` <= now) and that names its preemptor is taken
    as gone: its GPUs are free, but still kept for the preemptor in that cycle.
    """

    job_id: str
    team: str
    user: str
    node: str
    gpu_indices: tuple[int, ...]
    started_at: float
    max_runtime_s: float
    priority: int = 0
    preemptible: bool = True
    borrowed: bool = False
    cpu_milli: int = 0
    memory_mib: int = 0
    sweep_id: str | None = None
    terminating_until: float | None = None
    placements: tuple[tuple[str, tuple[int, ...]], ...] = ()
    preempted_for: str | None = None

    @property
    def pods(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Every pod's ``(node, GPU indices)``: one for a single-node job."""
        return self.placements or ((self.node, self.gpu_indices),)

    @property
    def gpus(self) -> int:
        """GPUs held in all, over every node of a gang."""
        if not self.placements:
            return len(self.gpu_indices)
        return sum(len(g) for _, g in self.placements)

    @property
    def expected_end(self) -> float:
        end = self.started_at + self.max_runtime_s
        if self.terminating_until is not None:
            return min(end, self.terminating_until)
        return end


@dataclass(frozen=True, slots=True)
class Booking:
    """A reservation of GPUs on a node over ``[start, end)`` for a user and/or a team."""

    id: str
    node: str
    gpu_indices: tuple[int, ...]
    start: float
    end: float
    user: str | None = None
    team: str | None = None

    def holds(self, team: str, user: str) -> bool:
        """True if a job of ``user`` in ``team`` may use this booking's GPUs."""
        return (self.user is not None and self.user == user) or (
            self.team is not None and self.team == team
        )


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job waiting for admission. ``models`` empty means any GPU model is acceptable.

    ``priority`` is the priority class's value (higher runs first); ``attempt`` counts
    preemptions. ``sweep_parallelism`` caps how many jobs of ``sweep_id`` run at once.
    ``nodes`` > 1 makes a gang: ``nodes`` pods of ``gpus`` GPUs (and ``cpu_milli``,
    ``memory_mib``) each, on distinct nodes, started all together or not at all.
    """

    id: str
    team: str
    user: str
    gpus: int
    max_runtime_s: float
    submitted_at: float
    models: frozenset[str] = frozenset()
    cpu_milli: int = 0
    memory_mib: int = 0
    priority: int = 0
    preemptible: bool = True
    attempt: int = 0
    sweep_id: str | None = None
    sweep_parallelism: int | None = None
    nodes: int = 1

    @property
    def total_gpus(self) -> int:
        """GPUs over every pod: what quotas, caps and budgets count."""
        return self.gpus * self.nodes

    @property
    def gpu_seconds(self) -> float:
        return self.gpus * self.nodes * self.max_runtime_s


class _QueuedJobRow:
    """``QueuedJob``'s slot layout without the freeze: a plain ``__init__`` fills it, then
    gives the object ``QueuedJob`` as its class (same slots, so CPython allows it). A frozen
    dataclass sets each field through ``object.__setattr__``, costly for the ~10,000 queued
    jobs the services layer reads every cycle. ``tests/scheduler/core`` checks the fields."""

    __slots__ = QueuedJob.__slots__

    def __init__(
        self,
        id: str,
        team: str,
        user: str,
        gpus: int,
        max_runtime_s: float,
        submitted_at: float,
        models: frozenset[str],
        cpu_milli: int,
        memory_mib: int,
        priority: int,
        preemptible: bool,
        attempt: int,
        sweep_id: str | None,
        sweep_parallelism: int | None,
        nodes: int,
    ) -> None:
        self.id = id
        self.team = team
        self.user = user
        self.gpus = gpus
        self.max_runtime_s = max_runtime_s
        self.submitted_at = submitted_at
        self.models = models
        self.cpu_milli = cpu_milli
        self.memory_mib = memory_mib
        self.priority = priority
        self.preemptible = preemptible
        self.attempt = attempt
        self.sweep_id = sweep_id
        self.sweep_parallelism = sweep_parallelism
        self.nodes = nodes
        self.__class__ = QueuedJob  # type: ignore[assignment]


#: ``QueuedJob(...)`` with every field given in order: the same frozen object, built several
#: times faster (see ``_QueuedJobRow``).
queued_job = cast("Callable[..., QueuedJob]", _QueuedJobRow)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """GPU-seconds consumed by ``user`` of ``team``, as valued at time ``at``.

    The core decays each record to ``now`` with the configured half-life, so a caller may pass
    one record per finished job or one pre-aggregated record per (team, user). Running
    allocations' elapsed GPU-seconds are added by the core: don't include them here.
    """

    team: str
    user: str
    gpu_seconds: float
    at: float


@dataclass(frozen=True, slots=True)
class TeamQuota:
    """A team's guaranteed GPUs, borrowing rights, fair-share weight and weekly budget.

    ``borrowing_limit`` None means any idle GPU may be borrowed; ``weekly_gpu_hours`` None
    means no budget; ``spent_gpu_hours`` is what this week's finished and running work used.
    """

    team: str
    guaranteed_gpus: int = 0
    borrowing_allowed: bool = True
    borrowing_limit: int | None = None
    share_weight: float = 1.0
    weekly_gpu_hours: float | None = None
    spent_gpu_hours: float = 0.0


@dataclass(frozen=True, slots=True)
class Config:
    """Policy switches; the defaults are production's policy.

    ``reserve_depth``: how many capacity-blocked jobs (in rank order) get a planned start that
    backfill must not delay (1 = EASY backfill: the head). ``plan_depth``: how many waiting
    jobs get an ETA from the shadow schedule (the rest get ``None``), bounding cycle time.
    ``backfill`` False gives plain FIFO: nothing starts behind a blocked job.
    ``plan_etas`` False skips the plans only ETAs read (see ``cycle.plan_cycle``): decisions,
    reasons and positions are the same, but waiting jobs past the protected ones get no ETA
    unless a preemption check could still read their plans. Replays use it.
    ``shortest_first``: within a team's (and user's) turn of fair share, shortest declared
    runtime first, aged by ``aging``: a job ranks by ``max_runtime_s - aging * waited``, so
    once it has waited ``max_runtime_s / aging`` (or ``starvation_s``, whichever is sooner) it
    is *starving* and ranks ahead of fair share, oldest first, within its priority class (the
    starvation bound, see ``fairshare``). False ranks by submit time (FIFO within the turn).
    ``nonpreemptible_within_guarantee``: a non-preemptible job starts only within its team's
    guaranteed GPUs, never on borrowed ones (which their lender could not reclaim).
    """

    packing: Packing = Packing.BEST_FIT
    preemption_grace_s: float = 60.0
    usage_half_life_s: float = WEEK_S
    fair_share: bool = True
    backfill: bool = True
    preemption: bool = True
    reserve_depth: int = 1
    plan_depth: int = 200
    plan_etas: bool = True
    default_user_gpu_cap: int | None = None
    booking_no_show_s: float | None = 1800.0
    shortest_first: bool = True
    aging: float = 0.25
    starvation_s: float | None = 12 * DAY_S
    nonpreemptible_within_guarantee: bool = True


_NO_QUOTA = TeamQuota(team="*")


@dataclass(frozen=True)
class Snapshot:
    """Everything one cycle decides from. Mappings are keyed by team or user name."""

    now: float
    nodes: tuple[Node, ...]
    queue: tuple[QueuedJob, ...]
    allocations: tuple[Allocation, ...] = ()
    bookings: tuple[Booking, ...] = ()
    usage: tuple[UsageRecord, ...] = ()
    quotas: Mapping[str, TeamQuota] = field(default_factory=dict)
    user_gpu_caps: Mapping[str, int] = field(default_factory=dict)
    user_share_weights: Mapping[str, float] = field(default_factory=dict)
    config: Config = Config()

    def quota(self, team: str) -> TeamQuota:
        """The team's quota; a team without one has nothing guaranteed and may borrow."""
        return self.quotas.get(team) or _NO_QUOTA

    def user_cap(self, user: str) -> int | None:
        return self.user_gpu_caps.get(user, self.config.default_user_gpu_cap)
