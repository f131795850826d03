"""Where a job goes: node filters, GPU choice, packing, and the earliest planned start.

Filters: the node is schedulable and has an acceptable model; GPUs are healthy and not busy
with foreign processes; CPU and memory fit; no block (a booking held by someone else, or a
protected planned start) overlaps the job's ``[start, start + max_runtime)``.

A gang (``QueuedJob.nodes`` > 1) needs that many distinct nodes each fitting one pod over
the same window, all at once (see ``gangs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from scheduler.core.cache import BoundOrder, ClusterUsage, NodeState
from scheduler.core.decisions import Reason
from scheduler.core.snapshot import Node, Packing, QueuedJob


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and when a job (pod 0 of a gang) starts; a gang lists every pod in ``pods``."""

    node: str
    gpu_indices: tuple[int, ...]
    start: float
    pods: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def all_pods(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return self.pods or ((self.node, self.gpu_indices),)


def model_ok(node: Node, job: QueuedJob) -> bool:
    return not job.models or node.gpu_model in job.models


def static_reason(nodes: list[Node], job: QueuedJob) -> Reason | None:
    """NO_MODEL or TOO_BIG when no schedulable node could ever run ``job``, NO_NODES when
    there is no schedulable node at all (none joined yet, or every one cordoned or not
    ready: the job waits for one rather than being judged too big), else None."""
    candidates = [n for n in nodes if n.schedulable and (job.gpus == 0 or model_ok(n, job))]
    if not candidates:
        if not any(n.schedulable for n in nodes):
            return Reason.NO_NODES
        return Reason.NO_MODEL if job.models else Reason.TOO_BIG
    holding = 0  # nodes that could hold one pod: a gang needs ``job.nodes`` of them
    for n in candidates:
        usable = sum(1 for g in n.gpus if g.usable)
        if usable >= job.gpus and n.cpu_milli >= job.cpu_milli and n.memory_mib >= job.memory_mib:
            holding += 1
            if holding >= job.nodes:
                return None
    return Reason.TOO_BIG


def _eligible(state: NodeState, job: QueuedJob) -> bool:
    node = state.node
    return (
        node.schedulable
        and (job.gpus == 0 or model_ok(node, job))
        and len(state.usable) >= job.gpus
        and node.cpu_milli >= job.cpu_milli
        and node.memory_mib >= job.memory_mib
    )


def eligible_nodes(usage: ClusterUsage, job: QueuedJob) -> dict[str, NodeState]:
    """The nodes that could ever hold ``job``, in inventory order. Eligibility reads only
    what a cycle never changes (the node's model, usable GPUs, size), so it is computed once
    per job shape and cycle."""
    shape = (job.gpus, job.models, job.cpu_milli, job.memory_mib)
    found = usage.shape_nodes.get(shape)
    if found is None:
        found = {name: s for name, s in usage.nodes.items() if _eligible(s, job)}
        usage.shape_nodes[shape] = found
    return found


def pick_gpus(state: NodeState, candidates: list[int], k: int) -> tuple[int, ...]:
    # GPUs without bookings or plans first: keeps booked GPUs for their holders and plans.
    ranked = sorted(candidates, key=lambda g: (g in state.blocks, g))
    return tuple(sorted(ranked[:k]))


def unblocked_gpus(
    state: NodeState, job: QueuedJob, now: float, end: float, ignore_blocks: bool = False
) -> list[int]:
    """The free GPUs of ``state`` no hard block (another's booking, a protected plan) keeps
    ``job`` off over ``[now, end)``."""
    free = state.free
    if ignore_blocks or not state.blocks:
        return list(free)
    return [g for g in free if state.exclusions(g, job.team, job.user, soft=False).free(now, end)]


def place_now(
    usage: ClusterUsage, job: QueuedJob, packing: Packing, ignore_blocks: bool = False
) -> Placement | None:
    """Where ``job`` can start at ``usage.now`` (hard blocks only), chosen by ``packing``.

    The winner is the least ``(GPUs left free, name)`` (best-fit; worst-fit: most left) among
    the nodes it fits: nodes are visited in that order (``ClusterUsage.by_free``) and the
    first that fits wins."""
    now, end, k = usage.now, usage.now + job.max_runtime_s, job.gpus
    eligible = eligible_nodes(usage, job)
    if k == 0:
        return _place_cpu_only(usage, job, packing, eligible)
    by_free, nodes = usage.by_free, usage.nodes
    cpu, mem = job.cpu_milli, job.memory_mib
    counts = sorted(
        (c for c, names in by_free.items() if c >= k and names),
        reverse=packing is not Packing.BEST_FIT,
    )
    for c in counts:
        for name in by_free[c]:
            if name not in eligible:
                continue
            state = nodes[name]
            if state.cpu_free < cpu or state.mem_free < mem:
                continue
            fits = unblocked_gpus(state, job, now, end, ignore_blocks)
            if len(fits) >= k:
                return Placement(name, pick_gpus(state, fits, k), now)
    return None


def _place_cpu_only(
    usage: ClusterUsage, job: QueuedJob, packing: Packing, eligible: dict[str, NodeState]
) -> Placement | None:
    """``place_now`` for a job without GPUs: any eligible node with the CPU and memory."""
    best: tuple[tuple[int, str], NodeState] | None = None
    best_fit = packing is Packing.BEST_FIT
    for name, state in eligible.items():
        if state.cpu_free < job.cpu_milli or state.mem_free < job.memory_mib:
            continue
        left = len(state.free)
        score = (left if best_fit else -left, name)
        if best is None or score < best[0]:
            best = (score, state)
    if best is None:
        return None
    return Placement(best[1].node.name, (), usage.now)


def _earliest_on(state: NodeState, job: QueuedJob, now: float, bound: float) -> float | None:
    """Earliest start before ``bound`` at which ``job`` fits on ``state`` (soft blocks count).

    Candidate starts are now (if CPU and memory fit), the instants GPUs come free and the
    ends of blocks: a window can only open at one of them.
    """
    rt, k = job.max_runtime_s, job.gpus
    busy = state.busy_until
    gpus = [(busy[g], state.exclusions(g, job.team, job.user, soft=True)) for g in state.usable]
    times = {t for t in busy.values() if t > now}
    for _, e in gpus:
        if e.starts:
            times.update(t for t in e.max_ends if t > now)
    if state.cpu_free >= job.cpu_milli and state.mem_free >= job.memory_mib:
        times.add(now)
    elif not times:  # CPU-only work with no GPU end to wait for: next cycle will tell
        return None
    for s in sorted(times):
        if s >= bound:
            return None
        if k == 0:
            return s
        count = 0
        end = s + rt
        for until, e in gpus:
            if until <= s and e.free(s, end):
                count += 1
                if count >= k:
                    return s
    return None


def _earliest_memo(state: NodeState, job: QueuedJob, now: float, bound: float) -> float | None:
    """``_earliest_on``, remembered per node until it changes (``NodeState.version``).

    Besides the node, the answer reads only the job's GPUs, runtime, whether CPU and memory
    fit now and, where it holds a booking here, its team and user. A start found below one
    bound answers every bound; "none below ``b``" answers bounds up to ``b``.
    """
    fits_now = state.cpu_free >= job.cpu_milli and state.mem_free >= job.memory_mib
    holder = (job.team, job.user) if state.holds_any(job.team, job.user) else None
    key = (job.gpus, job.max_runtime_s, fits_now, holder)
    known = state.earliest.get(key)
    if known is not None and known[0] == state.version:
        _, start, searched = known
        if start is not None:
            return start if start < bound else None
        if bound <= searched:
            return None
    start = _earliest_on(state, job, now, bound)
    state.earliest[key] = (state.version, start, bound)
    return start


def _by_start_bound(usage: ClusterUsage, job: QueuedJob) -> Iterator[tuple[float, NodeState]]:
    """``job``'s eligible nodes with their start bound, least first (ties: inventory order).

    The sorted order is kept per job shape for the whole cycle and only the nodes changed
    since the shape's last plan are re-keyed (``BoundOrder``)."""
    eligible = eligible_nodes(usage, job)
    k = job.gpus
    if k == 0:
        now = usage.now
        return ((now, s) for s in eligible.values())
    shape = (job.gpus, job.models, job.cpu_milli, job.memory_mib)
    kept = usage.bound_order.get(shape)
    if kept is None:
        kept = BoundOrder(list(eligible.values()), k, len(usage.changes))
        usage.bound_order[shape] = kept
    states = kept.states
    return ((lb, states[i]) for lb, i in kept.update(usage.changes, k))


def plan(usage: ClusterUsage, job: QueuedJob, packing: Packing) -> Placement | None:
    """The earliest start for ``job`` given running work, bookings and earlier plans.

    CPU and memory are checked against what is free now only for a start now; later starts
    assume they follow the GPUs (an estimate, like every ETA). Nodes are visited by a lower
    bound on their start (the k-th soonest GPU to free up, past running work and plans), so
    the search stops early.
    """
    now, k = usage.now, job.gpus
    best: tuple[float, int, str] | None = None
    # A node is searched only for a start below ``bound``: 1e-9 past the best so far, which
    # at epoch seconds rounds to the best itself, so a later node that only ties the best
    # start loses to the first one visited (the least start bound, then inventory order).
    # Every node from the first whose lower bound reaches ``bound`` can only find None.
    bound = float("inf")
    for lb, state in _by_start_bound(usage, job):
        if lb < now:
            lb = now
        if lb >= bound:
            break
        start = _earliest_memo(state, job, now, bound)
        if start is None:
            continue
        left = sum(1 for t in state.busy_until.values() if t <= start) - k
        score = (start, left if packing is Packing.BEST_FIT else -left, state.node.name)
        if best is None or score < best:
            best = score
            bound = start + 1e-9
    if best is None:
        return None
    start, _, name = best
    state = usage.nodes[name]
    end = start + job.max_runtime_s
    fits = [
        g
        for g in state.usable
        if state.busy_until[g] <= start
        and state.exclusions(g, job.team, job.user, soft=True).free(start, end)
    ]
    return Placement(name, pick_gpus(state, fits, k), start)
