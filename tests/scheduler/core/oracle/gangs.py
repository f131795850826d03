"""Multi-node jobs (gangs): ``nodes`` pods of ``gpus`` GPUs each, all placed or none.

A gang starts only when that many distinct nodes can each hold one pod over the same window
``[start, start + max_runtime)``; it is never started in part. Nodes are taken from one
topology group (``Node.topology``, e.g. a rack or a switch) when one group has enough: the
group with the fewest fitting nodes (it keeps bigger groups whole for bigger gangs), and
within it by the packing's score. Otherwise it spans the fewest groups, biggest first.
The shadow schedule plans a gang as a whole: its planned start is the first instant at which
enough nodes fit together, and its block covers every pod's GPUs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TypeVar

from scheduler.core.snapshot import Packing, QueuedJob
from tests.scheduler.core.oracle.cache import ClusterUsage, NodeState
from tests.scheduler.core.oracle.placement import (
    Placement,
    eligible_nodes,
    pick_gpus,
    unblocked_gpus,
)

T = TypeVar("T")
Candidate = tuple[tuple[float, str], NodeState, T]


def choose_nodes(cands: list[Candidate[T]], count: int) -> list[Candidate[T]] | None:
    """``count`` candidates (``(score, node, payload)``, lower score better), from one
    topology group when one has enough; None when there are too few."""
    if len(cands) < count:
        return None
    groups: dict[str, list[Candidate[T]]] = defaultdict(list)
    for c in sorted(cands, key=lambda c: c[0]):
        groups[c[1].node.topology].append(c)
    whole = [(len(g), name) for name, g in groups.items() if len(g) >= count]
    if whole:
        return groups[min(whole)[1]][:count]
    chosen: list[Candidate[T]] = []
    for _, name in sorted(((-len(g), name) for name, g in groups.items())):
        chosen.extend(groups[name][: count - len(chosen)])
        if len(chosen) >= count:
            break
    return chosen


def _as_placement(chosen: list[Candidate[list[int]]], k: int, start: float) -> Placement:
    pods = tuple((state.node.name, pick_gpus(state, fits, k)) for _, state, fits in chosen)
    return Placement(pods[0][0], pods[0][1], start, pods)


def place_gang_now(
    usage: ClusterUsage, job: QueuedJob, packing: Packing, ignore_blocks: bool = False
) -> Placement | None:
    """Where every pod of ``job`` can start at ``usage.now`` (hard blocks only), or None."""
    now, end, k = usage.now, usage.now + job.max_runtime_s, job.gpus
    eligible = eligible_nodes(usage, job)
    sign = 1 if packing is Packing.BEST_FIT else -1
    cands: list[Candidate[list[int]]] = []
    for name, state in (usage.with_free if k > 0 else eligible).items():
        free = state.free
        if name not in eligible or len(free) < k:
            continue
        if state.cpu_free < job.cpu_milli or state.mem_free < job.memory_mib:
            continue
        fits = unblocked_gpus(state, job, now, end, ignore_blocks)
        if len(fits) >= k:
            cands.append(((sign * (len(free) - k), name), state, fits))
    chosen = choose_nodes(cands, job.nodes)
    return None if chosen is None else _as_placement(chosen, k, now)


def _fits_at(state: NodeState, job: QueuedJob, start: float) -> list[int]:
    end = start + job.max_runtime_s
    return [
        g
        for g in state.usable
        if state.busy_until[g] <= start
        and state.exclusions(g, job.team, job.user, soft=True).free(start, end)
    ]


def _times(states: list[NodeState], floor: float) -> list[float]:
    """Instants at or after ``floor`` when a window can open: GPUs freeing, blocks ending."""
    times = {floor}
    for s in states:
        times.update(t for t in s.busy_until.values() if t > floor)
        for blocks in s.blocks.values():
            times.update(b.end for b in blocks if b.end > floor)
    return sorted(times)


def plan_gang(usage: ClusterUsage, job: QueuedJob, packing: Packing) -> Placement | None:
    """The earliest start at which ``job.nodes`` nodes each fit a pod, given running work,
    bookings and earlier plans (soft ones included, as for single-node plans)."""
    now, k, count = usage.now, job.gpus, job.nodes
    states = list(eligible_nodes(usage, job).values())
    if len(states) < count:
        return None
    lbs = [max(s.start_bounds()[k - 1], now) if k > 0 else now for s in states]
    floor = sorted(lbs)[count - 1]  # no start before ``count`` nodes could each fit a pod
    sign = 1 if packing is Packing.BEST_FIT else -1
    for t in _times(states, floor):
        cands: list[Candidate[list[int]]] = []
        for lb, state in zip(lbs, states, strict=True):
            if lb > t:
                continue
            if t == now and (state.cpu_free < job.cpu_milli or state.mem_free < job.memory_mib):
                continue
            fits = _fits_at(state, job, t)
            if len(fits) >= k:
                left = sum(1 for u in state.busy_until.values() if u <= t) - k
                cands.append(((sign * left, state.node.name), state, fits))
        chosen = choose_nodes(cands, count)
        if chosen is not None:
            return _as_placement(chosen, k, t)
    return None
