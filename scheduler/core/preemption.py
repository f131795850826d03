"""Choosing victims: who stops so that a higher-ranked job can start.

Two grounds, as in Kueue: **reclaim** (the job fits in its team's guaranteed GPUs, and other
teams are borrowing beyond theirs: their borrowed work goes) and **priority** (a job of a
higher priority class may stop lower-priority work of its own team, or anyone's borrowed
work). Non-preemptible jobs are never victims. A gang is a victim as a whole: all its pods
stop, on every node.

Fewest victims first, then the least work lost (the youngest): on each node, a single
candidate that makes room wins (borrowed first, then lowest priority, then most recently
started); otherwise candidates are taken in that order and any not needed for the fit is
spared. Across nodes the set with the fewest victims wins, then the one losing the fewest
GPU-seconds. A gang preemptor takes the cheapest nodes by the same rule, counting nodes that
already fit a pod as free.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.core.cache import ClusterUsage, NodeState
from scheduler.core.decisions import PreemptReason
from scheduler.core.placement import eligible_nodes
from scheduler.core.snapshot import Allocation, QueuedJob, Snapshot


@dataclass(frozen=True, slots=True)
class Victims:
    """Who stops, and where the preemptor then starts (every pod's GPUs for a gang)."""

    node: str
    gpu_indices: tuple[int, ...]
    allocations: tuple[tuple[Allocation, PreemptReason], ...]
    pods: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _candidates(
    usage: ClusterUsage,
    snap: Snapshot,
    job: QueuedJob,
    reclaim: bool,
    cheapest: list[tuple[float, str]] | None = None,
) -> dict[str, list[tuple[Allocation, PreemptReason]]]:
    """Running jobs ``job`` may stop, by node, on nodes that could hold it; ``reclaim``:
    ``job`` fits in its team's guarantee. ``cheapest`` gets each such node's least work
    lost by stopping one of them (``_lost_one``) with the node's name.

    A node's list depends only on its running work and on the job's team, priority, id (if
    that runs) and ``reclaim`` with the teams then beyond their guarantee: it is remembered
    per node under that key until the node's running work changes (``running_version``).
    """
    team_gpus = usage.team_gpus
    over = (
        frozenset(t for t, n in team_gpus.items() if n > snap.quota(t).guaranteed_gpus)
        if reclaim
        else frozenset()
    )
    key = (job.team, job.priority, reclaim, over, job.id if job.id in usage.running else None)
    by_node: dict[str, list[tuple[Allocation, PreemptReason]]] = {}
    on_node, versions = usage.on_node, usage.running_version
    memo = usage.candidates.get(key)
    if memo is None:
        memo = usage.candidates[key] = {}
    for node in eligible_nodes(usage, job):
        running = on_node.get(node)
        if not running:
            continue
        version = versions[node]
        known = memo.get(node)
        if known is None or known[0] != version:
            known = memo[node] = (version, *_on(running, job, reclaim, over, usage.now))
        _, found, least = known
        if found:
            by_node[node] = found
            if cheapest is not None:
                cheapest.append((least, node))
    return by_node


def _on(
    running: dict[str, Allocation], job: QueuedJob, reclaim: bool, over: frozenset[str], now: float
) -> tuple[list[tuple[Allocation, PreemptReason]], float]:
    """The candidates among one node's ``running`` work and the least work one loses."""
    team, priority, job_id = job.team, job.priority, job.id
    found: list[tuple[Allocation, PreemptReason]] = []
    for a in running.values():
        if not a.preemptible or a.job_id == job_id:
            continue
        if reclaim and a.borrowed and a.team != team and a.team in over:
            found.append((a, PreemptReason.RECLAIM))
            continue
        if a.priority < priority and (a.team == team or a.borrowed):
            found.append((a, PreemptReason.PRIORITY))
    least = min([_lost_one(a, now) for a, _ in found]) if found else 0.0
    return found, least


def _lost_one(a: Allocation, now: float) -> float:
    """The GPU-seconds ``a`` has run: the work lost if it stops now."""
    gpus = a.gpus if a.placements else len(a.gpu_indices)
    return gpus * (now - a.started_at)


def _gone(state: NodeState, freed: list[Allocation]) -> set[int]:
    """The GPUs of ``state`` that ``freed`` hold (a gang holds GPUs on several nodes)."""
    for a in freed:
        if a.placements:
            name = state.node.name
            return {g for a in freed for node, gpus in a.pods if node == name for g in gpus}
    return {g for a in freed for g in a.gpu_indices}


def _fit(state: NodeState, job: QueuedJob, start: float, freed: list[Allocation]) -> list[int]:
    """GPUs of ``state`` usable by ``job`` from ``start`` if ``freed`` were gone."""
    gone = _gone(state, freed)
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
    gone = _gone(state, everyone)
    busy = state.busy_until
    free_then, busy_then = _at(state, start)
    if free_then + len(busy_then & gone) < job.gpus:
        return None  # too few GPUs even before bookings and plans: skip the window checks
    open_ = _open_gpus(state, job, start)

    def fit(freed: list[Allocation]) -> list[int]:  # ``_fit``, with the windows checked
        gone = _gone(state, freed)
        return [g for g in open_ if busy[g] <= start or g in gone]

    if (
        sum([busy[g] <= start or g in gone for g in open_]) < job.gpus  # fit(everyone)
        or not _resources_ok(state, job, everyone)
    ):
        return None
    cands = sorted(cands, key=lambda c: (not c[0].borrowed, c[0].priority, -c[0].started_at))
    for cand in cands:  # one victim is the fewest: the first that makes room alone wins
        fits = fit([cand[0]])
        if len(fits) >= job.gpus and _resources_ok(state, job, [cand[0]]):
            return [cand], fits
    chosen: list[tuple[Allocation, PreemptReason]] = []
    for cand in cands:
        chosen.append(cand)
        freed = [a for a, _ in chosen]
        if len(fit(freed)) >= job.gpus and _resources_ok(state, job, freed):
            break
    else:
        return None
    # Spare any victim the fit doesn't need, most valuable (last taken) first (by index, not
    # identity: a compiled core boxes tuples anew, so ``is`` would spare none).
    for i in range(len(chosen) - 1, -1, -1):
        rest = chosen[:i] + chosen[i + 1 :]
        freed = [a for a, _ in rest]
        if len(fit(freed)) >= job.gpus and _resources_ok(state, job, freed):
            chosen = rest
    return chosen, fit([a for a, _ in chosen])


def _at(state: NodeState, start: float) -> tuple[int, frozenset[int]]:
    """How many usable GPUs of ``state`` are free at ``start``, and which are still busy;
    remembered until the node changes (``NodeState.version``)."""
    known = state.at_start
    if known is not None and known[0] == state.version and known[1] == start:
        return known[2], known[3]
    busy = frozenset(g for g, t in state.busy_until.items() if t > start)
    free = len(state.busy_until) - len(busy)
    state.at_start = (state.version, start, free, busy)
    return free, busy


def _open_gpus(state: NodeState, job: QueuedJob, start: float) -> list[int]:
    """The usable GPUs of ``state`` no hard block keeps ``job`` off over its run from
    ``start`` (``_fit``'s second test, which does not depend on who stops).

    Remembered per node until it changes (``NodeState.version``): besides the node, the
    answer reads only the start, the run's length and, where the job holds a booking here,
    its team and user; the searches of one cycle all start at the same instant.
    """
    team, user = job.team, job.user
    holder = (team, user) if state.holds_any(team, user) else None
    key = (start, job.max_runtime_s, holder)
    known = state.open_at.get(key)
    if known is not None and known[0] == state.version:
        return known[1]
    end = start + job.max_runtime_s
    found = [
        g for g in state.usable if state.exclusions(g, team, user, soft=False).free(start, end)
    ]
    state.open_at[key] = (state.version, found)
    return found


def _cannot_beat(
    state: NodeState,
    job: QueuedJob,
    start: float,
    cands: list[tuple[Allocation, PreemptReason]],
    now: float,
    best: tuple[int, float, str],
) -> bool:
    """True if no set of ``cands`` on ``state`` can score below ``best`` (victims, lost).

    A lower bound, checked before ``_on_node``'s window checks: the victims must free the
    GPUs ``job`` lacks at ``start`` (each frees its own GPUs here that are busy then), so at
    least as many as the largest candidates need, losing at least the cheapest ones' work.
    """
    free_then, busy_then = _at(state, start)
    lacking = job.gpus - free_then
    if lacking <= 0:
        return False  # only bookings, plans or CPU stand in the way: no cheap bound
    frees = [  # the GPUs each frees here that are busy at ``start``
        len(busy_then.intersection(a.gpu_indices if not a.placements else _gone(state, [a])))
        for a, _ in cands
    ]
    frees.sort(reverse=True)
    count, freed = 0, 0
    for n in frees:
        if freed >= lacking:
            break
        freed += n
        count += 1
    if freed < lacking:
        return True  # _on_node would find no set either
    victims, lost = best[0], best[1]
    if count != victims:
        return count > victims
    cheapest = sorted([_lost_one(a, now) for a, _ in cands])[:count]
    # Tolerance: float sums in another order may differ in the last bits; skip only clearly.
    return sum(cheapest) > lost + 1e-6 * (1.0 + abs(lost))


def _lost(usage: ClusterUsage, chosen: list[tuple[Allocation, PreemptReason]]) -> float:
    return sum(a.gpus * (usage.now - a.started_at) for a, _ in chosen)


def find_victims(usage: ClusterUsage, snap: Snapshot, job: QueuedJob) -> Victims | None:
    """The cheapest set of running jobs whose preemption lets ``job`` start after the grace.

    Returns None when no node (no set of nodes, for a gang) can be freed for it on the
    grounds above.
    """
    reclaim = usage.team_gpus[job.team] + job.total_gpus <= snap.quota(job.team).guaranteed_gpus
    if job.gpus == 0 or (not reclaim and job.priority <= usage.lowest_preemptible):
        return None
    start = usage.now + snap.config.preemption_grace_s
    if job.nodes > 1:
        return _for_gang(usage, job, start, _candidates(usage, snap, job, reclaim))
    best: tuple[tuple[int, float, str], Victims] | None = None
    # Any set of victims on a node loses at least its cheapest candidate's work: visiting
    # nodes by that bound, a node whose bound can't beat the best so far is skipped.
    now = usage.now
    bounds: list[tuple[float, str]] = []
    by_node = _candidates(usage, snap, job, reclaim, bounds)
    bounds.sort()
    for cheapest, name in bounds:
        if best is not None and (1, cheapest, name) >= best[0]:
            if best[0][0] == 1:
                break  # every later node's bound is higher still
            continue
        cands = by_node[name]
        state = usage.nodes[name]
        if best is not None and _cannot_beat(state, job, start, cands, now, best[0]):
            continue
        found = _on_node(state, job, start, cands)
        if found is None:
            continue
        chosen, fits = found
        score = (len(chosen), _lost(usage, chosen), name)
        if best is None or score < best[0]:
            gpus = tuple(sorted(fits)[: job.gpus])
            best = (score, Victims(name, gpus, tuple(chosen)))
    return None if best is None else best[1]


def _for_gang(
    usage: ClusterUsage,
    job: QueuedJob,
    start: float,
    by_node: dict[str, list[tuple[Allocation, PreemptReason]]],
) -> Victims | None:
    """Victims for a gang: the ``job.nodes`` cheapest nodes (fewest victims, then least work
    lost; a node that fits a pod as it is costs nothing), each victim (gang) counted once."""
    options: list[tuple[tuple[int, float, str], list[tuple[Allocation, PreemptReason]], list[int]]]
    options = []
    for name, state in eligible_nodes(usage, job).items():
        fits = _fit(state, job, start, [])
        if len(fits) >= job.gpus and _resources_ok(state, job, []):
            options.append(((0, 0.0, name), [], fits))
            continue
        found = _on_node(state, job, start, by_node[name]) if name in by_node else None
        if found is not None:
            options.append(((len(found[0]), _lost(usage, found[0]), name), *found))
    if len(options) < job.nodes:
        return None
    options.sort(key=lambda o: o[0])
    taken = options[: job.nodes]
    victims: dict[str, tuple[Allocation, PreemptReason]] = {}
    for _, chosen, _ in taken:
        for a, why in chosen:
            victims.setdefault(a.job_id, (a, why))
    if not victims:
        return None  # it fits without anyone stopping: the plan will find it
    pods = tuple((o[0][2], tuple(sorted(o[2])[: job.gpus])) for o in taken)
    return Victims(pods[0][0], pods[0][1], tuple(victims.values()), pods)
