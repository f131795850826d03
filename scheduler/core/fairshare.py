"""Queue order: priority class, then fair share (team, then user within it), then within a
user's turn the shortest aged declared runtime (``Config.shortest_first``; submit time when
off).

Usage is GPU-seconds decayed exponentially (``usage * 0.5 ** (age / half_life)``), as in
Slurm's fair-share factor ``2 ** (-U / S)``; ranking by ``U / S`` gives the same order without
the normalization. Within one cycle a team's (and user's) usage grows by the GPU-seconds its
earlier-ranked queued jobs ask for, so teams with equal history interleave instead of one
taking every free GPU because its first job ranked first (Kueue's admission fair sharing
re-ranks after each admission for the same reason).

Within a turn, shortest-first by declared runtime minimises average completion time (the
classic SJF result, which holds approximately for a cluster); ``max_runtime_s - aging *
waited`` ages it, so a long job's rank improves by ``aging`` seconds per second waited. Once
that key reaches zero (the job has waited ``max_runtime_s / aging``), or it has waited
``Config.starvation_s``, the job is *starving*: it ranks ahead of fair share's order within
its priority class, oldest first, whatever its team's usage. So no job waits for its turn
longer than ``min(max_runtime_s / aging, starvation_s)`` plus the time the starving jobs
ahead of it take (they all arrived before it).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable
from math import inf
from operator import attrgetter

from scheduler.core.snapshot import Allocation, QueuedJob, Snapshot, UsageRecord


def decay(gpu_seconds: float, age_s: float, half_life_s: float) -> float:
    """Value now of ``gpu_seconds`` used ``age_s`` ago.

    >>> decay(100.0, 7 * 86400, 7 * 86400)
    50.0
    """
    if half_life_s <= 0:
        return gpu_seconds
    return float(gpu_seconds * 0.5 ** (max(age_s, 0.0) / half_life_s))


def decayed_usage(
    records: Iterable[UsageRecord], running: Iterable[Allocation], now: float, half_life_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Decayed GPU-seconds per team and per user, including running work's elapsed part."""
    team: dict[str, float] = defaultdict(float)
    user: dict[str, float] = defaultdict(float)
    for r in records:
        value = decay(r.gpu_seconds, now - r.at, half_life_s)
        team[r.team] += value
        user[r.user] += value
    for a in running:
        # Elapsed work of a running job is recent: counting it undecayed is close enough.
        value = a.gpus * max(0.0, min(now, a.expected_end) - a.started_at)
        team[a.team] += value
        user[a.user] += value
    return team, user


def fair_share_factor(usage: float, total_usage: float, share: float, total_share: float) -> float:
    """Slurm's classic factor ``2 ** (-U/S)`` in (0, 1]; 1 means no usage yet.

    >>> fair_share_factor(50.0, 100.0, 1.0, 2.0)
    0.5
    """
    if total_usage <= 0 or share <= 0 or total_share <= 0:
        return 1.0
    return float(2.0 ** (-(usage / total_usage) / (share / total_share)))


def within_turn(job: QueuedJob, now: float, aging: float | None) -> float:
    """What ranks jobs of one (team, user) lane of equal priority: lower first.

    ``aging`` None: submit time (FIFO). Else the declared runtime less ``aging`` times the
    wait so far (shortest first, aged).

    >>> j = QueuedJob("a", "t", "u", 1, 3600.0, 0.0)
    >>> within_turn(j, 1000.0, 1.0), within_turn(j, 1000.0, None)
    (2600.0, 0.0)
    """
    if aging is None:
        return job.submitted_at
    return job.max_runtime_s - aging * (now - job.submitted_at)


def order_queue(snapshot: Snapshot) -> list[QueuedJob]:
    """The queue in rank order (see the module docstring); deterministic for equal keys."""
    cfg, now, queue = snapshot.config, snapshot.now, snapshot.queue
    aging = cfg.aging if cfg.shortest_first else None
    if aging is None:  # ``within_turn``, inlined: it runs once per queued job
        turn = {job.id: job.submitted_at for job in queue}
    else:
        turn = {job.id: job.max_runtime_s - aging * (now - job.submitted_at) for job in queue}

    def _static_key(job: QueuedJob) -> tuple[int, float, str]:
        return (-job.priority, turn[job.id], job.id)

    if not cfg.fair_share:
        return sorted(snapshot.queue, key=_static_key)
    team_use, user_use = decayed_usage(
        snapshot.usage, snapshot.allocations, snapshot.now, snapshot.config.usage_half_life_s
    )
    lanes: dict[tuple[str, str], list[QueuedJob]] = defaultdict(list)
    starving: list[QueuedJob] = []
    ages = aging is not None and aging > 0
    oldest = (  # submitted at or before this: waited starvation_s
        now - cfg.starvation_s if aging is not None and cfg.starvation_s is not None else -inf
    )
    for job in queue:
        if (ages and turn[job.id] <= 0) or job.submitted_at <= oldest:
            starving.append(job)
            gpu_s = job.gpus * job.nodes * job.max_runtime_s  # ``QueuedJob.gpu_seconds``
            team_use[job.team] += gpu_s  # ranked first, as if taken first
            user_use[job.user] += gpu_s
        else:
            lanes[(job.team, job.user)].append(job)
    for jobs in lanes.values():
        jobs.sort(key=_static_key, reverse=True)  # pop() from the end gives the best
    team_w = {t: max(snapshot.quota(t).share_weight, 1e-9) for t, _ in lanes}
    user_w = {u: max(snapshot.user_share_weights.get(u, 1.0), 1e-9) for _, u in lanes}
    fair = _take_in_turn(lanes, team_use, user_use, team_w, user_w, turn)
    if not starving:
        return fair
    # Within a priority class, starving jobs (oldest first) precede fair share's order: both
    # runs are sorted by priority and the sort is stable (Timsort merges the two runs).
    starving.sort(key=attrgetter("id"))  # then stably by submit time: by (submitted_at, id),
    starving.sort(key=attrgetter("submitted_at"))  # each sort on keys of one type (faster)
    starving.extend(fair)
    starving.sort(key=attrgetter("priority"), reverse=True)  # stable, reversed or not
    return starving


def _take_in_turn(
    lanes: dict[tuple[str, str], list[QueuedJob]],
    team_use: dict[str, float],
    user_use: dict[str, float],
    team_w: dict[str, float],
    user_w: dict[str, float],
    turn: dict[str, float],
) -> list[QueuedJob]:
    """Empty ``lanes`` (per (team, user), best job last) in rank order, adding each job's
    GPU-seconds to its team's and user's usage as it is taken."""
    # Each one's usage over its weight, kept current as jobs are taken (same float division
    # as computing it afresh, so the order is exactly that of re-ranking after every job).
    team_rank = {t: team_use[t] / w for t, w in team_w.items()}
    user_rank = {u: user_use[u] / w for u, w in user_w.items()}
    # Two levels of heaps: a team's lanes by (priority, user rank, turn key, id), and the
    # teams by their best lane's key with the team's rank after the priority. A team's rank
    # is the same for all its lanes, so the best team's best lane is the best lane overall,
    # and taking a job leaves only that team's entry (and a user's lanes in other teams)
    # stale. Keys only grow (usage only accrues, a lane's next job ranks no better), so a
    # stale entry is re-keyed when it reaches the top: lazy re-ranking stays exact.
    inner: dict[str, list[tuple[tuple[int, float, float, str], str]]] = defaultdict(list)
    for (team, user), jobs in lanes.items():
        job = jobs[-1]
        inner[team].append(((-job.priority, user_rank[user], turn[job.id], job.id), user))
    outer: list[tuple[tuple[int, float, float, float, str], str]] = []
    for team, heap in inner.items():
        heapq.heapify(heap)
        key = heap[0][0]
        outer.append(((key[0], team_rank[team], key[1], key[2], key[3]), team))
    heapq.heapify(outer)
    ordered: list[QueuedJob] = []
    heapreplace, heappop = heapq.heapreplace, heapq.heappop
    while outer:
        stored, team = outer[0]
        heap = inner[team]
        key, user = heap[0]
        while key[1] != user_rank[user]:  # a lane of a user who also works in another team
            heapreplace(heap, ((key[0], user_rank[user], key[2], key[3]), user))
            key, user = heap[0]
        if stored[1] != team_rank[team] or stored[2] != key[1] or stored[4] != key[3]:
            heapreplace(outer, ((key[0], team_rank[team], key[1], key[2], key[3]), team))
            continue
        jobs = lanes[(team, user)]
        job = jobs.pop()
        ordered.append(job)
        gpu_s = job.gpus * job.nodes * job.max_runtime_s  # ``QueuedJob.gpu_seconds``
        team_use[team] += gpu_s
        user_use[user] += gpu_s
        team_rank[team] = team_use[team] / team_w[team]
        user_rank[user] = rank = user_use[user] / user_w[user]
        if jobs:
            job = jobs[-1]
            key = (-job.priority, rank, turn[job.id], job.id)
            heapreplace(heap, (key, user))
        else:
            heappop(heap)
        if heap:
            key = heap[0][0]
            heapreplace(outer, ((key[0], team_rank[team], key[1], key[2], key[3]), team))
        else:
            heappop(outer)
    return ordered
