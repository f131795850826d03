"""One scheduling cycle: a snapshot in, decisions out. The only copy of the policy.

Production (the services layer), the tests, the trace simulator and the benchmarks all call
``plan_cycle``; it reads no clock and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.core.decisions import (
    BEHIND_DETAIL,
    WAITING_FOR_GPUS,
    Admit,
    CycleResult,
    Preempt,
    Reason,
    ReleaseReservation,
    Waiting,
)
from scheduler.core.snapshot import Allocation, Booking, Config, Packing, QueuedJob, Snapshot
from tests.scheduler.core.oracle.cache import Block, ClusterUsage
from tests.scheduler.core.oracle.fairshare import order_queue
from tests.scheduler.core.oracle.gangs import place_gang_now, plan_gang
from tests.scheduler.core.oracle.placement import Placement, place_now, plan, static_reason
from tests.scheduler.core.oracle.preemption import find_victims

Gate = tuple[Reason, str]


def review_bookings(snap: Snapshot) -> tuple[list[ReleaseReservation], tuple[Booking, ...]]:
    """Bookings to release (over, or unused ``booking_no_show_s`` after start) and the rest."""
    no_show = snap.config.booking_no_show_s
    nodes = {n.name: n for n in snap.nodes}
    released: list[ReleaseReservation] = []
    kept: list[Booking] = []
    for b in snap.bookings:
        if b.end <= snap.now:
            released.append(ReleaseReservation(b.id, "ended"))
            continue
        if no_show is not None and b.start + no_show <= snap.now:
            used_by_holder = any(
                a.node == b.node
                and set(a.gpu_indices) & set(b.gpu_indices)
                and b.holds(a.team, a.user)
                for a in snap.allocations
            )
            node = nodes.get(b.node)
            # A foreign process on a booked GPU is most likely the holder working by hand.
            used_by_hand = node is not None and any(
                g.foreign_busy for g in node.gpus if g.index in b.gpu_indices
            )
            if not used_by_holder and not used_by_hand:
                released.append(ReleaseReservation(b.id, "no-show"))
                continue
        kept.append(b)
    return released, tuple(kept)


def admission_gate(
    snap: Snapshot, usage: ClusterUsage, job: QueuedJob, gpus: int | None = None
) -> Gate | bool:
    """A (reason, detail) that keeps ``job`` out whatever the free GPUs, else ``borrowed``."""
    if job.sweep_id is not None and job.sweep_parallelism is not None:
        running = usage.sweep_jobs[job.sweep_id]
        if running >= job.sweep_parallelism:
            return (
                Reason.SWEEP_CAP,
                f"sweep {job.sweep_id} runs {running} of {job.sweep_parallelism}",
            )
    cap = snap.user_cap(job.user)
    if gpus is None:
        gpus = job.total_gpus
    if cap is not None and usage.user_gpus[job.user] + gpus > cap:
        return Reason.USER_CAP, f"{job.user} uses {usage.user_gpus[job.user]} of {cap} GPUs"
    quota = snap.quota(job.team)
    if quota.weekly_gpu_hours is not None and gpus > 0:
        spent = quota.spent_gpu_hours + usage.team_gpu_hours[job.team]
        need = job.gpu_seconds / 3600.0
        if spent + need > quota.weekly_gpu_hours:
            return Reason.BUDGET, (
                f"team {job.team} spent {spent:.1f} of {quota.weekly_gpu_hours:.1f} GPU-hours "
                f"this week; the job may need {need:.1f}"
            )
    over = usage.team_gpus[job.team] + gpus - quota.guaranteed_gpus
    if over > 0 and gpus > 0:
        if not job.preemptible and snap.config.nonpreemptible_within_guarantee:
            # Borrowed GPUs must stay reclaimable: work nobody may stop runs only within
            # the guarantee, so it never blocks another team's job within its own.
            return Reason.QUOTA, (
                f"non-preemptible work of team {job.team} runs only within its "
                f"{quota.guaranteed_gpus} guaranteed GPUs ({usage.team_gpus[job.team]} in use)"
            )
        if not quota.borrowing_allowed:
            return Reason.QUOTA, f"team {job.team} uses its {quota.guaranteed_gpus} guaranteed GPUs"
        if quota.borrowing_limit is not None and over > quota.borrowing_limit:
            return Reason.QUOTA, f"team {job.team} may borrow at most {quota.borrowing_limit} GPUs"
    return over > 0 and gpus > 0


def _place_now(
    usage: ClusterUsage, job: QueuedJob, packing: Packing, ignore_blocks: bool = False
) -> Placement | None:
    if job.nodes > 1:
        return place_gang_now(usage, job, packing, ignore_blocks)
    return place_now(usage, job, packing, ignore_blocks)


def _plan(usage: ClusterUsage, job: QueuedJob, packing: Packing) -> Placement | None:
    return plan_gang(usage, job, packing) if job.nodes > 1 else plan(usage, job, packing)


def _static_detail(reason: Reason, job: QueuedJob) -> str:
    if reason is Reason.NO_MODEL:
        return f"no schedulable node has a GPU of model {' or '.join(sorted(job.models))}"
    if job.nodes > 1:
        return (
            f"fewer than {job.nodes} schedulable nodes have {job.gpus} usable GPUs, "
            f"{job.cpu_milli}m CPU and {job.memory_mib} MiB each"
        )
    return (
        f"no schedulable node has {job.gpus} usable GPUs, {job.cpu_milli}m CPU and "
        f"{job.memory_mib} MiB"
    )


class _NoFit:
    """Shapes that found no place now in this cycle, with the shortest such runtime.

    Within one cycle free GPUs, CPU and memory only shrink and blocks only grow, so a shape
    that did not fit will not fit later in the cycle with a run at least as long: the cycle
    skips the node scan (most of its time with a long queue on a full cluster).
    """

    def __init__(self) -> None:
        self._runtime: dict[tuple[object, ...], float] = {}

    def known(self, key: tuple[object, ...], runtime_s: float) -> bool:
        shortest = self._runtime.get(key)
        return shortest is not None and runtime_s >= shortest

    def add(self, key: tuple[object, ...], runtime_s: float) -> None:
        self._runtime[key] = min(runtime_s, self._runtime.get(key, runtime_s))


@dataclass
class _Queue:
    """What step 5 accumulates for step 6."""

    no_fit: _NoFit = field(default_factory=_NoFit)
    fits: dict[tuple[object, ...], int] = field(default_factory=dict)  # shape: usage.holds

    admitted: list[Admit] = field(default_factory=list)
    preempted: list[Preempt] = field(default_factory=list)
    waiting: list[tuple[QueuedJob, Reason, str, Placement | None]] = field(default_factory=list)
    ordered: list[QueuedJob] = field(default_factory=list)  # the queue in rank order
    rank: dict[str, int] = field(default_factory=dict)  # job id -> rank, filled when needed
    capacity_blocked: int = 0
    protected: int = 0
    planned: int = 0
    last_preemptor: int = -1  # rank of the last job that might preempt (see below)

    def plan_matters(self, cfg: Config, rank: int) -> bool:
        """True if the plan of the job at ``rank`` may be read by more than its ETA.

        Plans feed ETAs, the protected starts backfill must not delay, and preemption checks
        (a job's own plan, and the soft plans of jobs ranked above it). With ``plan_etas``
        off, the rest are skipped. The one other reader of a soft plan is ``pick_gpus``'
        preference for GPUs without plans, so a job may get other GPU indices on the same
        node; ``tests/scheduler/sim`` checks that replays measure the same either way.
        """
        return (
            cfg.plan_etas
            or rank <= self.last_preemptor
            or bool(self.preempted)  # a team's GPUs may have shrunk: see _last_preemptor
            or (cfg.backfill and self.protected < cfg.reserve_depth)
        )


def _admit(usage: ClusterUsage, job: QueuedJob, where: Placement, borrowed: bool) -> Admit:
    usage.add_usage(
        Allocation(
            job.id,
            job.team,
            job.user,
            where.node,
            where.gpu_indices,
            usage.now,
            job.max_runtime_s,
            job.priority,
            job.preemptible,
            borrowed,
            job.cpu_milli,
            job.memory_mib,
            job.sweep_id,
            placements=where.pods,
        ),
        admitted_now=True,
    )
    return Admit(job.id, where.node, where.gpu_indices, borrowed, where.pods)


def _reserve(usage: ClusterUsage, job: QueuedJob, where: Placement, soft: bool) -> None:
    """Block ``where``'s GPUs over the job's planned run so later jobs plan around it."""
    block = Block(where.start, where.start + job.max_runtime_s, soft=soft)
    for node, gpus in where.all_pods:
        state = usage.nodes[node]
        for g in gpus:
            state.add_block(g, block)


def _fits_but_for_blocks(usage: ClusterUsage, job: QueuedJob, cfg: Config, q: _Queue) -> bool:
    """True if free GPUs could hold ``job`` now were it not for bookings and plans."""
    key = ("ignoring blocks", job.gpus, job.models, job.cpu_milli, job.memory_mib, job.nodes)
    if q.no_fit.known(key, 0.0):
        return False
    # Ignoring blocks, the answer depends only on what is held: it stands until the next hold.
    if q.fits.get(key) == usage.holds:
        return True
    if _place_now(usage, job, cfg.packing, ignore_blocks=True) is not None:
        q.fits[key] = usage.holds
        return True
    q.no_fit.add(key, 0.0)
    return False


def _last_preemptor(snap: Snapshot, usage: ClusterUsage, ordered: list[QueuedJob]) -> int:
    """The rank of the last job that might preempt in this cycle (-1: none can).

    Conservative for ``find_victims``' early exit: until a first preemption a team's GPUs only
    grow (so reclaim needs room under the guarantee now) and the lowest running preemptible
    priority only falls to some queued preemptible job's priority.
    """
    if not snap.config.preemption:
        return -1
    lowest = usage.lowest_preemptible
    floor = min((j.priority for j in ordered if j.preemptible), default=lowest)
    floor = min(floor, lowest)
    room: dict[str, int] = {}  # GPUs left under each team's guarantee
    for i in range(len(ordered) - 1, -1, -1):
        job = ordered[i]
        if job.gpus == 0:
            continue
        if job.priority > floor:
            return i
        if job.team not in room:
            room[job.team] = snap.quota(job.team).guaranteed_gpus - usage.team_gpus.get(job.team, 0)
        if job.total_gpus <= room[job.team]:
            return i
    return -1


def _preempt_for(snap: Snapshot, usage: ClusterUsage, job: QueuedJob, q: _Queue) -> bool:
    """5c. Preempt the victims ``job`` needs, if it has any: they stop within the grace, the
    job waits for them on their GPUs. False when no set of victims would make room."""
    victims = find_victims(usage, snap, job)
    if victims is None:
        return False
    now, grace = snap.now, snap.config.preemption_grace_s
    # Admitted by this very cycle (they start now): withdraw those, never start them.
    fresh = [a for a, _ in victims.allocations if a.started_at == now]
    admitted = {a.job_id for a in q.admitted} if fresh else set()
    stopping = 0
    for a, why in victims.allocations:
        if a.job_id in admitted:
            _withdraw(usage, q, a, job, now + grace)
            continue
        q.preempted.append(Preempt(a.job_id, why, job.id, grace))
        usage.remove_usage(a, busy_until=now + grace)
        stopping += 1
    where = Placement(victims.node, victims.gpu_indices, now + grace, victims.pods)
    _reserve(usage, job, where, soft=False)
    q.waiting.append((job, Reason.PREEMPTING, f"{stopping} to stop", where))
    q.capacity_blocked += 1
    return True


def _withdraw(usage: ClusterUsage, q: _Queue, a: Allocation, by: QueuedJob, until: float) -> None:
    """Take back this cycle's admission of ``a``, whose GPUs ``by`` (ranked later, but
    reclaiming or of higher priority) takes: admitting and preempting a job in one cycle
    would start a pod only to kill it. The job waits in its rank's place; its GPUs stay
    held until ``until`` like a victim's, so what the cycle decided before stays true."""
    q.admitted = [x for x in q.admitted if x.job_id != a.job_id]
    usage.remove_usage(a, busy_until=until)
    usage.team_gpu_hours[a.team] -= a.gpus * a.max_runtime_s / 3600.0  # not spent after all
    if not q.rank:
        q.rank.update((j.id, i) for i, j in enumerate(q.ordered))
    rank = q.rank
    mine = rank[a.job_id]
    at = next((i for i, w in enumerate(q.waiting) if rank[w[0].id] > mine), len(q.waiting))
    job = q.ordered[mine]
    q.waiting.insert(at, (job, Reason.BEHIND, f"its GPUs were claimed by job {by.id}", None))
    q.capacity_blocked += 1


def _capacity_reason(
    usage: ClusterUsage, job: QueuedJob, cfg: Config, q: _Queue, free: int
) -> tuple[Reason, str]:
    """Why ``job`` waits for GPUs. "Behind" counts the higher-ranked jobs that also wait for
    GPUs; those held by a quota or cap keep their place in line but don't stand in this
    job's way."""
    if cfg.backfill and free >= job.total_gpus and _fits_but_for_blocks(usage, job, cfg, q):
        return Reason.RESERVED, "free GPUs are booked or planned for others"
    if q.capacity_blocked:
        return Reason.BEHIND, BEHIND_DETAIL
    return Reason.CAPACITY, "waiting for running jobs to end"


def plan_cycle(snap: Snapshot) -> CycleResult:
    """Decide admissions, preemptions and booking releases for ``snap``; explain the rest.

    Steps: 1 heads (bookings in force), 2 snapshot (the usage cache), 3 nominate (jobs some
    node could ever run), 4 order (priority, fair share, submit time), 5 admit (gates, place
    now, else preempt or plan a start), 6 requeue (reasons, positions, ETAs).
    """
    cfg, now = snap.config, snap.now
    # 1. Heads: release bookings that are over or not shown up for; the rest block GPUs.
    released, bookings = review_bookings(snap)
    # 2. Snapshot: nodes, running work and bookings into the cache.
    usage = ClusterUsage(snap, bookings)
    free = usage.free_gpus
    # 3. Nominate: a job no schedulable node could ever hold waits with a static reason.
    nodes = list(snap.nodes)
    shapes: dict[tuple[int, frozenset[str], int, int, int], Reason | None] = {}
    # 4. Order.
    ordered = order_queue(snap)
    # 5. Admit, in rank order.
    q = _Queue(ordered=ordered)
    grace = cfg.preemption_grace_s
    if not cfg.plan_etas:
        q.last_preemptor = _last_preemptor(snap, usage, ordered)
    for rank, job in enumerate(ordered):
        shape = (job.gpus, job.models, job.cpu_milli, job.memory_mib, job.nodes)
        static = (  # once per shape
            shapes[shape]
            if shape in shapes
            else shapes.setdefault(shape, static_reason(nodes, job))
        )
        if static is not None:
            q.waiting.append((job, static, _static_detail(static, job), None))
            continue
        need = job.gpus * job.nodes  # every pod's GPUs
        gate = admission_gate(snap, usage, job, need)
        if not isinstance(gate, bool):
            q.waiting.append((job, gate[0], gate[1], None))
            continue
        # 5a. Start now: the job's whole run must miss others' bookings and protected plans.
        may_start = (cfg.backfill or q.capacity_blocked == 0) and free >= need
        fit_key = (*shape, job.team, job.user) if may_start else ()
        if may_start and not q.no_fit.known(fit_key, job.max_runtime_s):
            where = _place_now(usage, job, cfg.packing)
            if where is not None:
                q.admitted.append(_admit(usage, job, where, gate))
                free -= need
                continue
            q.no_fit.add(fit_key, job.max_runtime_s)
        # 5b. Blocked by capacity: plan the earliest start (the shadow schedule).
        planned, in_depth = None, q.planned < cfg.plan_depth
        if in_depth:
            if q.plan_matters(cfg, rank):
                planned = _plan(usage, job, cfg.packing)
            q.planned += 1
        # 5c. Preempt if that starts it sooner than waiting would. Only jobs within the plan
        # depth may: deeper ones get their turn as they move up, which also bounds how much
        # one cycle preempts.
        if (
            cfg.preemption
            and in_depth
            and (planned is None or planned.start > now + grace)
            and _preempt_for(snap, usage, job, q)
        ):
            continue
        if planned is not None:
            soft = cfg.backfill and q.protected >= cfg.reserve_depth
            _reserve(usage, job, planned, soft=soft)
            q.protected += 0 if soft else 1
        reason, detail = _capacity_reason(usage, job, cfg, q, free)
        q.waiting.append((job, reason, detail, planned))
        q.capacity_blocked += 1
    # 6. Requeue: everything not admitted stays queued with its reason, position and ETA.
    waiting: list[Waiting] = []
    ahead = 0  # rows so far that wait for GPUs
    for i, (job, reason, detail, where) in enumerate(q.waiting):
        start = where.start if where is not None else None
        node = where.node if where is not None else None
        waiting.append(Waiting(job.id, reason, detail, i + 1, ahead, start, node))
        ahead += reason in WAITING_FOR_GPUS
    rows = tuple((w.job_id, w.reason, w.detail, w.eta, w.planned_node) for w in waiting)
    result = CycleResult(tuple(q.admitted), tuple(q.preempted), tuple(released), rows)
    # Its own ``Waiting`` objects (positions and counts made here, not by ``waiting_rows``):
    # the oracle test compares them with the core's.
    object.__setattr__(result, "_waiting", tuple(waiting))
    return result
