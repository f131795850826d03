"""Choosing victims: who stops so that a higher-ranked job can start.

Two grounds, as in Kueue: **reclaim** (the job fits in its team's guaranteed GPUs, and other
teams are borrowing beyond theirs: their borrowed work goes) and **priority** (a job of a
higher priority class may stop lower-priority work of its own team, or anyone's borrowed
work). Non-preemptible jobs are never victims. On each node the candidates are taken
borrowed first, then lowest priority, then most recently started (least work lost), and
then any victim not needed for the fit is spared; the node losing the least GPU-seconds wins.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from scheduler.core.cache import ClusterUsage, NodeState
from scheduler.core.decisions import PreemptReason
from scheduler.core.placement import eligible_nodes
from scheduler.core.snapshot import Allocation, QueuedJob, Snapshot


@dataclass(frozen=True, slots=True)
class Victims:
    node: str
    gpu_indices: tuple[int, ...]
    allocations: tuple[tuple[Allocation, PreemptReason], ...]


def _candidates(
    usage: ClusterUsage, snap: Snapshot, job: QueuedJob, reclaim: bool
) -> dict[str, list[tuple[Allocation, PreemptReason]]]:
    """Running jobs ``job`` may stop, by node, on nodes that could hold it; ``reclaim``:
    ``job`` fits in its team's guarantee."""
    eligible = eligible_nodes(usage, job)
    team, priority = job.team, job.priority
    over: dict[str, bool] = {}  # team -> beyond its guarantee, read once per call
    by_node: dict[str, list[tuple[Allocation, PreemptReason]]] = defaultdict(list)
    for a in usage.running.values():
        if not a.preemptible or a.job_id == job.id or a.node not in eligible:
            continue
        if reclaim and a.team != team and a.borrowed:
            if a.team not in over:
                over[a.team] = usage.team_gpus[a.team] > snap.quota(a.team).guaranteed_gpus
            if over[a.team]:
                by_node[a.node].append((a, PreemptReason.RECLAIM))
                continue
        if a.priority < priority and (a.team == team or a.borrowed):
            by_node[a.node].append((a, PreemptReason.PRIORITY))
    return by_node


def _fit(state: NodeState, job: QueuedJob, start: float, freed: list[Allocation]) -> list[int]:
    """GPUs of ``state`` usable by ``job`` from ``start`` if ``freed`` were gone."""
    gone = {g for a in freed for g in a.gpu_indices}
    end = start + job.max_runtime_s
    return [
        g
        for g in state.usable
        if (state.busy_until[g] <= start or g in gone)
        and state.exclusions(g, job.team, job.user, soft=False).free(start, end)
    ]


def _resources_ok(state: NodeState, job: QueuedJob, freed: list[Allocation]) -> bool:
    cpu = state.cpu_free + sum(a.cpu_milli for a in freed)
    mem = state.mem_free + sum(a.memory_mib for a in freed)
    return cpu >= job.cpu_milli and mem >= job.memory_mib


def _on_node(
    state: NodeState, job: QueuedJob, start: float, cands: list[tuple[Allocation, PreemptReason]]
) -> tuple[list[tuple[Allocation, PreemptReason]], list[int]] | None:
    # Freeing more only frees more: if stopping every candidate isn't enough, nothing is.
    everyone = [a for a, _ in cands]
    gone = {g for a in everyone for g in a.gpu_indices}
    if sum(1 for g, t in state.busy_until.items() if t <= start or g in gone) < job.gpus:
        return None  # too few GPUs even before bookings and plans: skip the window checks
    if len(_fit(state, job, start, everyone)) < job.gpus or not _resources_ok(state, job, everyone):
        return None
    cands = sorted(cands, key=lambda c: (not c[0].borrowed, c[0].priority, -c[0].started_at))
    chosen: list[tuple[Allocation, PreemptReason]] = []
    for cand in cands:
        chosen.append(cand)
        freed = [a for a, _ in chosen]
        if len(_fit(state, job, start, freed)) >= job.gpus and _resources_ok(state, job, freed):
            break
    else:
        return None
    # Spare any victim the fit doesn't need, most valuable (last taken) first.
    for cand in list(reversed(chosen)):
        rest = [c for c in chosen if c is not cand]
        freed = [a for a, _ in rest]
        if len(_fit(state, job, start, freed)) >= job.gpus and _resources_ok(state, job, freed):
            chosen = rest
    return chosen, _fit(state, job, start, [a for a, _ in chosen])


def find_victims(usage: ClusterUsage, snap: Snapshot, job: QueuedJob) -> Victims | None:
    """The cheapest set of running jobs whose preemption lets ``job`` start after the grace.

    Returns None when no node can be freed for it on the grounds above.
    """
    reclaim = usage.team_gpus[job.team] + job.gpus <= snap.quota(job.team).guaranteed_gpus
    if job.gpus == 0 or (not reclaim and job.priority <= usage.lowest_preemptible):
        return None
    start = usage.now + snap.config.preemption_grace_s
    best: tuple[tuple[float, int, str], Victims] | None = None
    for name, cands in _candidates(usage, snap, job, reclaim).items():
        state = usage.nodes[name]
        found = _on_node(state, job, start, cands)
        if found is None:
            continue
        chosen, fits = found
        lost = sum(a.gpus * (usage.now - a.started_at) for a, _ in chosen)
        score = (lost, len(chosen), name)
        if best is None or score < best[0]:
            gpus = tuple(sorted(fits)[: job.gpus])
            best = (score, Victims(name, gpus, tuple(chosen)))
    return None if best is None else best[1]
