"""Where a job goes: node filters, GPU choice, packing, and the earliest planned start.

Filters: the node is schedulable and has an acceptable model; GPUs are healthy and not busy
with foreign processes; CPU and memory fit; no block (a booking held by someone else, or a
protected planned start) overlaps the job's ``[start, start + max_runtime)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.core.cache import ClusterUsage, NodeState
from scheduler.core.decisions import Reason
from scheduler.core.snapshot import Node, Packing, QueuedJob


@dataclass(frozen=True, slots=True)
class Placement:
    node: str
    gpu_indices: tuple[int, ...]
    start: float


def model_ok(node: Node, job: QueuedJob) -> bool:
    return not job.models or node.gpu_model in job.models


def static_reason(nodes: list[Node], job: QueuedJob) -> Reason | None:
    """NO_MODEL or TOO_BIG when no schedulable node could ever run ``job``, else None."""
    candidates = [n for n in nodes if n.schedulable and (job.gpus == 0 or model_ok(n, job))]
    if not candidates:
        return Reason.NO_MODEL if job.models else Reason.TOO_BIG
    for n in candidates:
        usable = sum(1 for g in n.gpus if g.usable)
        if usable >= job.gpus and n.cpu_milli >= job.cpu_milli and n.memory_mib >= job.memory_mib:
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


def _pick_gpus(state: NodeState, candidates: list[int], k: int) -> tuple[int, ...]:
    # GPUs without bookings or plans first: keeps booked GPUs for their holders and plans.
    ranked = sorted(candidates, key=lambda g: (g in state.blocks, g))
    return tuple(sorted(ranked[:k]))


def place_now(
    usage: ClusterUsage, job: QueuedJob, packing: Packing, ignore_blocks: bool = False
) -> Placement | None:
    """Where ``job`` can start at ``usage.now`` (hard blocks only), chosen by ``packing``."""
    now, end, k = usage.now, usage.now + job.max_runtime_s, job.gpus
    best: tuple[tuple[int, str], NodeState, list[int]] | None = None
    for state in (usage.with_free if k > 0 else usage.nodes).values():
        if len(state.free) < k or state.cpu_free < job.cpu_milli or not _eligible(state, job):
            continue
        if state.mem_free < job.memory_mib:
            continue
        if ignore_blocks:
            fits = list(state.free)
        else:
            fits = [
                g
                for g in state.free
                if not state.blocked(g, now, end, job.team, job.user, soft=False)
            ]
        if len(fits) < k:
            continue
        left = len(state.free) - k
        score = (left if packing is Packing.BEST_FIT else -left, state.node.name)
        if best is None or score < best[0]:
            best = (score, state, fits)
    if best is None:
        return None
    _, state, fits = best
    return Placement(state.node.name, _pick_gpus(state, fits, k), now)


def _earliest_on(state: NodeState, job: QueuedJob, now: float, bound: float) -> float | None:
    """Earliest start before ``bound`` at which ``job`` fits on ``state`` (soft blocks count)."""
    rt = job.max_runtime_s
    excl = {g: state.exclusions(g, job.team, job.user, soft=True) for g in state.usable}
    times = {t for t in state.busy_until.values() if t > now}
    for e in excl.values():
        times.update(t for t in e.ends() if t > now)
    if state.cpu_free >= job.cpu_milli and state.mem_free >= job.memory_mib:
        times.add(now)
    elif not times:  # CPU-only work with no GPU end to wait for: next cycle will tell
        return None
    for s in sorted(times):
        if s >= bound:
            return None
        if job.gpus == 0:
            return s
        count = 0
        for g, e in excl.items():
            if state.busy_until[g] <= s and e.free(s, s + rt):
                count += 1
                if count >= job.gpus:
                    return s
    return None


def plan(usage: ClusterUsage, job: QueuedJob, packing: Packing) -> Placement | None:
    """The earliest start for ``job`` given running work, bookings and earlier plans.

    CPU and memory are checked against what is free now only for a start now; later starts
    assume they follow the GPUs (an estimate, like every ETA). Nodes are visited by a lower
    bound on their start (the k-th soonest GPU to free up, past running work and plans), so
    the search stops early.
    """
    now, k = usage.now, job.gpus
    bounds: list[tuple[float, NodeState]] = []
    for state in usage.nodes.values():
        if _eligible(state, job):
            lb = max(state.start_bounds()[k - 1], now) if k > 0 else now
            bounds.append((lb, state))
    bounds.sort(key=lambda b: b[0])
    best: tuple[float, int, str] | None = None
    for lb, state in bounds:
        if best is not None and lb > best[0]:
            break
        start = _earliest_on(state, job, now, best[0] + 1e-9 if best else float("inf"))
        if start is None:
            continue
        left = sum(1 for t in state.busy_until.values() if t <= start) - k
        score = (start, left if packing is Packing.BEST_FIT else -left, state.node.name)
        if best is None or score < best:
            best = score
    if best is None:
        return None
    start, _, name = best
    state = usage.nodes[name]
    end = start + job.max_runtime_s
    fits = [
        g
        for g in state.usable
        if state.busy_until[g] <= start
        and not state.blocked(g, start, end, job.team, job.user, True)
    ]
    return Placement(name, _pick_gpus(state, fits, k), start)
