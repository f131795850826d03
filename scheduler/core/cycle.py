"""One scheduling cycle: a snapshot in, decisions out. The only copy of the policy.

Production (the services layer), the tests, the trace simulator and the benchmarks all call
``plan_cycle``; it reads no clock and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler.core.cache import Block, ClusterUsage, NodeState
from scheduler.core.decisions import (
    BEHIND_DETAIL,
    Admit,
    CycleResult,
    Preempt,
    Reason,
    ReleaseReservation,
    Row,
)
from scheduler.core.fairshare import order_queue
from scheduler.core.gangs import place_gang_now, plan_gang
from scheduler.core.placement import Placement, place_now, plan, static_reason
from scheduler.core.preemption import find_victims
from scheduler.core.snapshot import (
    Allocation,
    Booking,
    Config,
    Node,
    Packing,
    QueuedJob,
    Snapshot,
)

Gate = tuple[Reason, str]
RESERVED_DETAIL = "free GPUs are booked or planned for others"
CAPACITY_DETAIL = "waiting for running jobs to end"
_UNSEEN: Any = object()  # a shape not yet looked at
Shape = tuple[int, frozenset[str], int, int, int]  # GPUs, models, CPU, memory, nodes


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
    sweep = job.sweep_id
    if sweep is not None and job.sweep_parallelism is not None:
        running = usage.sweep_jobs[sweep]
        if running >= job.sweep_parallelism:
            return (
                Reason.SWEEP_CAP,
                f"sweep {sweep} runs {running} of {job.sweep_parallelism}",
            )
    user, team = job.user, job.team
    cap = snap.user_gpu_caps.get(user, snap.config.default_user_gpu_cap)  # ``snap.user_cap``
    if gpus is None:
        gpus = job.total_gpus
    if cap is not None and usage.user_gpus[user] + gpus > cap:
        return Reason.USER_CAP, f"{user} uses {usage.user_gpus[user]} of {cap} GPUs"
    quota = snap.quotas.get(team) or snap.quota(team)  # the lookup first: once per job
    if gpus <= 0:
        return False
    if quota.weekly_gpu_hours is not None:
        spent = quota.spent_gpu_hours + usage.team_gpu_hours[team]
        need = job.gpu_seconds / 3600.0
        if spent + need > quota.weekly_gpu_hours:
            return Reason.BUDGET, (
                f"team {team} spent {spent:.1f} of {quota.weekly_gpu_hours:.1f} GPU-hours "
                f"this week; the job may need {need:.1f}"
            )
    used = usage.team_gpus[team]
    over = used + gpus - quota.guaranteed_gpus
    if over <= 0:
        return False
    if not job.preemptible and snap.config.nonpreemptible_within_guarantee:
        # Borrowed GPUs must stay reclaimable: work nobody may stop runs only within
        # the guarantee, so it never blocks another team's job within its own.
        return Reason.QUOTA, (
            f"non-preemptible work of team {team} runs only within its "
            f"{quota.guaranteed_gpus} guaranteed GPUs ({used} in use)"
        )
    if not quota.borrowing_allowed:
        return Reason.QUOTA, f"team {team} uses its {quota.guaranteed_gpus} guaranteed GPUs"
    if quota.borrowing_limit is not None and over > quota.borrowing_limit:
        return Reason.QUOTA, f"team {team} may borrow at most {quota.borrowing_limit} GPUs"
    return True


def _place_now(
    usage: ClusterUsage, job: QueuedJob, packing: Packing, ignore_blocks: bool = False
) -> Placement | None:
    if job.nodes > 1:
        return place_gang_now(usage, job, packing, ignore_blocks)
    return place_now(usage, job, packing, ignore_blocks)


def _plan(usage: ClusterUsage, job: QueuedJob, packing: Packing) -> Placement | None:
    return plan_gang(usage, job, packing) if job.nodes > 1 else plan(usage, job, packing)


def _static(
    shapes: dict[Shape, Reason | None],
    shape: Shape,
    nodes: list[Node],
    job: QueuedJob,
) -> Reason | None:
    """``static_reason`` of a shape first met, remembered in ``shapes`` (once per shape)."""
    found = shapes[shape] = static_reason(nodes, job)
    return found


def _static_detail(reason: Reason, job: QueuedJob) -> str:
    if reason is Reason.NO_NODES:
        return "no node is schedulable: none has joined, or all are cordoned or not ready"
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

    @property
    def shortest(self) -> dict[tuple[object, ...], float]:
        """The shortest runtime per shape (read directly in the cycle's loop)."""
        return self._runtime

    def add(self, key: tuple[object, ...], runtime_s: float) -> None:
        self._runtime[key] = min(runtime_s, self._runtime.get(key, runtime_s))


@dataclass
class _Queue:
    """What step 5 accumulates for step 6."""

    no_fit: _NoFit = field(default_factory=_NoFit)
    fits: dict[Shape, int] = field(default_factory=dict)  # fits but for blocks: usage.holds
    never_fits: set[Shape] = field(default_factory=set)  # shapes no free GPUs hold now

    admitted: list[Admit] = field(default_factory=list)
    preempted: list[Preempt] = field(default_factory=list)
    # (job id, reason, detail, planned start, planned node): ``waiting_rows``' input as is
    waiting: list[Row] = field(default_factory=list)
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


def _fits_but_for_blocks(
    usage: ClusterUsage, job: QueuedJob, cfg: Config, q: _Queue, shape: Shape
) -> bool:
    """True if free GPUs could hold ``job`` now were it not for bookings and plans."""
    if shape in q.never_fits:
        return False
    # Ignoring blocks, the answer depends only on what is held: it stands until the next hold.
    if q.fits.get(shape) == usage.holds:
        return True
    if _place_now(usage, job, cfg.packing, ignore_blocks=True) is not None:
        q.fits[shape] = usage.holds
        return True
    q.never_fits.add(shape)
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
    q.waiting.append((job.id, Reason.PREEMPTING, f"{stopping} to stop", where.start, where.node))
    q.capacity_blocked += 1
    return True


@dataclass
class _Held:
    """GPUs being freed for a queued job by its earlier preemptions: a hard block on each,
    from when they come free over the job's run, so that no job ranked above it plans onto
    them; taken back at the job's own turn (``_release``)."""

    stopping: int  # its victims still terminating
    blocks: list[tuple[str, int, Block]] = field(default_factory=list)  # (node, GPU, block)


def _keep_on(
    state: NodeState, job: QueuedJob, gpus: set[int], others_stopping: set[int], by: float
) -> tuple[list[int], float] | None:
    """The GPUs of ``state`` to keep for ``job``'s pod and when they are all free: those
    being freed for it (``gpus``) first, then, if the pod needs more, others free by ``by``
    (soonest first; not those being freed for another preemptor, not booked by others);
    None when the node can no longer hold the pod."""
    busy = state.busy_until
    ours = sorted(g for g in gpus if g in busy)[: job.gpus]
    if not ours or not state.node.schedulable:
        return None
    until = max(busy[g] for g in ours)
    for t, g in sorted((busy[g], g) for g in state.usable):
        if len(ours) >= job.gpus or t > by:
            break
        start = max(until, t)
        if g in gpus or g in others_stopping:
            continue
        if state.exclusions(g, job.team, job.user, False).free(start, start + job.max_runtime_s):
            ours.append(g)
            until = start
    return (ours, until) if len(ours) >= job.gpus else None


def _hold_for_preemptors(snap: Snapshot, usage: ClusterUsage) -> dict[str, _Held]:
    """Reserve the GPUs of terminating jobs for the queued job they were stopped for.

    A victim's ``Allocation.preempted_for`` names its preemptor. While that job still waits
    (is in the queue), the victims' GPUs on each node, topped up when a pod needs more
    with that node's other GPUs free within a grace period (``_keep_on``), are blocked from
    the instant they are all free over the job's run, as the preempting cycle blocked them.
    Without this a job ranked higher in a later cycle (fair share moves) planned onto them
    and the preemptor, left without, preempted again. A preemptor gone or admitted lapses
    the reservation (it is not queued); so does a node that can no longer hold its pod.
    """
    victims: dict[str, list[Allocation]] = {}
    stopping: dict[str, set[int]] = {}  # per node, GPUs being freed for some preemptor
    for a in snap.allocations:
        if a.terminating_until is not None and a.preempted_for is not None:
            victims.setdefault(a.preempted_for, []).append(a)
            for node, gpus in a.pods:
                stopping.setdefault(node, set()).update(gpus)
    if not victims:
        return {}
    by = snap.now + snap.config.preemption_grace_s  # when a preemptor now could start
    held: dict[str, _Held] = {}
    for job in snap.queue:
        mine = victims.get(job.id)
        if not mine or job.gpus == 0:
            continue
        freed: dict[str, set[int]] = {}
        for a in mine:
            for node, gpus in a.pods:
                freed.setdefault(node, set()).update(gpus)
        found = held[job.id] = _Held(len(mine))
        for node, being_freed in sorted(freed.items()):
            state = usage.nodes.get(node)
            kept = (
                None
                if state is None
                else _keep_on(state, job, being_freed, stopping[node] - being_freed, by)
            )
            if state is not None and kept is not None:
                block = Block(kept[1], kept[1] + job.max_runtime_s)
                for g in kept[0]:
                    state.add_block(g, block)
                    found.blocks.append((node, g, block))
    return held


def _release(usage: ClusterUsage, q: _Queue, held: _Held) -> None:
    """Take back a preemptor's reservation at its turn: it plans like any job from here.
    If a reserved GPU is free now, a shape found not to fit may fit again: forget them."""
    free_again = False
    for node, gpu, block in held.blocks:
        state = usage.nodes[node]
        state.remove_block(gpu, block)
        free_again = free_again or gpu in state.free
    if free_again:
        q.no_fit.shortest.clear()
        q.never_fits.clear()


def _take_back(
    usage: ClusterUsage, q: _Queue, reserved: dict[str, _Held], job: QueuedJob
) -> _Held | None:
    """``job``'s reservation (GPUs its victims free), released at its turn, if it has one."""
    held = reserved.pop(job.id, None) if reserved else None
    if held is not None:
        _release(usage, q, held)
    return held


def _shadow_plan(
    usage: ClusterUsage, job: QueuedJob, cfg: Config, q: _Queue, rank: int, held: bool
) -> tuple[Placement | None, bool]:
    """5b's plan of ``job`` (None where nothing reads it) and whether it is within the plan
    depth. A job whose victims are stopping always plans: it must take their GPUs again."""
    planned, in_depth = None, q.planned < cfg.plan_depth
    if in_depth:
        if held or q.plan_matters(cfg, rank):
            planned = _plan(usage, job, cfg.packing)
        q.planned += 1
    elif held:
        planned = _plan(usage, job, cfg.packing)
    return planned, in_depth


def _waits_for_victims(
    usage: ClusterUsage,
    job: QueuedJob,
    q: _Queue,
    held: _Held,
    planned: Placement | None,
    by: float,
) -> bool:
    """True (and ``job`` waits, ``preempting``) if its victims are still stopping and it can
    start ``by`` the end of a grace period: its GPUs are kept (a hard block, as the
    preempting cycle made), and it never preempts again for the same start."""
    if planned is None or planned.start > by:
        return False
    _reserve(usage, job, planned, soft=False)
    q.waiting.append(
        (job.id, Reason.PREEMPTING, f"{held.stopping} stopping", planned.start, planned.node)
    )
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
    at = next((i for i, w in enumerate(q.waiting) if rank[w[0]] > mine), len(q.waiting))
    q.waiting.insert(
        at, (a.job_id, Reason.BEHIND, f"its GPUs were claimed by job {by.id}", None, None)
    )
    q.capacity_blocked += 1


def _start_now(
    usage: ClusterUsage, job: QueuedJob, cfg: Config, q: _Queue, shape: Shape, borrowed: bool
) -> bool:
    """5a: admit ``job`` now if some node holds it over its whole run (missing others'
    bookings and protected plans). A shape and team/user found not to fit is not searched
    again in this cycle for a run at least as long (``_NoFit``)."""
    fit_key = (*shape, job.team, job.user)
    shortest = q.no_fit.shortest.get(fit_key)
    if shortest is not None and job.max_runtime_s >= shortest:
        return False
    where = _place_now(usage, job, cfg.packing)
    if where is None:
        q.no_fit.add(fit_key, job.max_runtime_s)
        return False
    q.admitted.append(_admit(usage, job, where, borrowed))
    return True


def _capacity_reason(
    usage: ClusterUsage, job: QueuedJob, cfg: Config, q: _Queue, free: int, shape: Shape
) -> tuple[Reason, str]:
    """Why ``job`` waits for GPUs: "behind" when higher-ranked jobs also wait for GPUs;
    those held by a quota or cap keep their place in line but don't stand in this job's
    way (``Waiting.ahead`` counts the former)."""
    if (
        cfg.backfill
        and free >= shape[0] * shape[4]
        and _fits_but_for_blocks(usage, job, cfg, q, shape)
    ):
        return Reason.RESERVED, RESERVED_DETAIL
    if q.capacity_blocked:  # how many: ``Waiting.ahead``
        return Reason.BEHIND, BEHIND_DETAIL
    return Reason.CAPACITY, CAPACITY_DETAIL


def _row(job: QueuedJob, reason: Reason, detail: str, planned: Placement | None) -> Row:
    if planned is None:
        return (job.id, reason, detail, None, None)
    return (job.id, reason, detail, planned.start, planned.node)


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
    shapes: dict[Shape, Reason | None] = {}
    # 4. Order.
    ordered = order_queue(snap)
    # 5. Admit, in rank order.
    q = _Queue(ordered=ordered)
    grace, plan_depth = cfg.preemption_grace_s, cfg.plan_depth
    if not cfg.plan_etas:
        q.last_preemptor = _last_preemptor(snap, usage, ordered)
    waiting = q.waiting
    # Jobs whose victims are still stopping: their GPUs are kept for them until their turn.
    reserved = _hold_for_preemptors(snap, usage)
    for rank, job in enumerate(ordered):
        held = _take_back(usage, q, reserved, job) if reserved else None
        shape = (job.gpus, job.models, job.cpu_milli, job.memory_mib, job.nodes)
        static = shapes.get(shape, _UNSEEN)
        static = _static(shapes, shape, nodes, job) if static is _UNSEEN else static
        if static is not None:
            waiting.append((job.id, static, _static_detail(static, job), None, None))
            continue
        need = job.gpus * job.nodes  # every pod's GPUs
        gate = admission_gate(snap, usage, job, need)
        if not isinstance(gate, bool):
            waiting.append((job.id, gate[0], gate[1], None, None))
            continue
        # 5a. Start now: the job's whole run must miss others' bookings and protected plans.
        if (
            free >= need
            and (cfg.backfill or q.capacity_blocked == 0)
            and _start_now(usage, job, cfg, q, shape, gate)
        ):
            free -= need
            continue
        # 5b. Blocked by capacity: plan the earliest start (the shadow schedule). Past the
        # plan depth nothing is planned and nothing preempted: the job waits for capacity.
        if held is None and q.planned >= plan_depth:
            reason, detail = _capacity_reason(usage, job, cfg, q, free, shape)
            waiting.append((job.id, reason, detail, None, None))
            q.capacity_blocked += 1
            continue
        planned, in_depth = _shadow_plan(usage, job, cfg, q, rank, held is not None)
        if held is not None and _waits_for_victims(usage, job, q, held, planned, now + grace):
            continue
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
        reason, detail = _capacity_reason(usage, job, cfg, q, free, shape)
        waiting.append(_row(job, reason, detail, planned))
        q.capacity_blocked += 1
    # 6. Requeue: everything not admitted stays queued with its reason, position and ETA.
    return CycleResult(tuple(q.admitted), tuple(q.preempted), tuple(released), tuple(q.waiting))
