"""Discrete-event replay of a trace through ``plan_cycle``, with a simulated clock.

Events are arrivals, finishes and the end of a preemption's grace period; after each batch
of events at one instant the simulator builds a ``Snapshot``, runs one cycle and applies its
decisions, as the services layer would. Declared max runtimes are the real ones times a
factor drawn from ``[1, 1 + runtime_error]`` (users over-estimate); a job always ends at its
real run time, so no deadline kills it. A preempted job restarts from scratch (its work is
lost, as with a killed pod) and keeps its arrival time for ranking.

A job wider than every node becomes a gang (``as_gang``): ``ceil(gpus / G)`` pods of
``ceil(gpus / pods)`` GPUs each, G the most GPUs one node has (a 32-GPU Philly job on 8-GPU
nodes: 4 pods of 8). Only jobs the cluster could never hold, even as a gang, are dropped,
and ``Metrics.dropped_reasons`` says why.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from scheduler.core.cycle import plan_cycle
from scheduler.core.decisions import CycleResult
from scheduler.core.placement import static_reason
from scheduler.core.snapshot import (
    Allocation,
    Config,
    Node,
    QueuedJob,
    Snapshot,
    TeamQuota,
    UsageRecord,
)
from scheduler.sim.metrics import Metrics, Recorder
from scheduler.sim.traces import TraceJob

# Replays need only the plans decisions depend on (the protected head's, and the check
# before preempting), not an ETA for everyone: a shallow plan depth keeps cycles short, and
# ``plan_etas=False`` skips the plans that only ETAs would read.
_SIM = Config(plan_depth=32, plan_etas=False)
POLICIES: dict[str, Config] = {
    "fifo": replace(_SIM, fair_share=False, backfill=False, preemption=False, shortest_first=False),
    "fifo-backfill": replace(_SIM, fair_share=False, preemption=False, shortest_first=False),
    "default": _SIM,
}

# Ends before arrivals at one instant, so arrivals see the GPUs that just came free.
_GRACE_END, _FINISH, _ARRIVE = 0, 1, 2

Event = tuple[float, int, str, int]  # time, kind, job id, attempt token


@dataclass
class _State:
    jobs: dict[str, QueuedJob]  # every replayable job as first submitted
    node_free: dict[str, int]
    attempts: dict[str, int] = field(default_factory=dict)
    queue: dict[str, QueuedJob] = field(default_factory=dict)
    running: dict[str, Allocation] = field(default_factory=dict)
    token: dict[str, int] = field(default_factory=dict)  # attempt a finish event belongs to
    usage: dict[tuple[str, str], UsageRecord] = field(default_factory=dict)


def _end(state: _State, rec: Recorder, job_id: str, now: float, half_life: float) -> Allocation:
    """Take ``job_id`` off its GPUs (every pod of a gang) and fold its GPU-seconds into a
    decayed usage record."""
    a = state.running.pop(job_id)
    for node, gpus in a.pods:
        state.node_free[node] += len(gpus)
        rec.held(a.job_id, node, gpus, a.started_at, now)
    old = state.usage.get((a.team, a.user))
    value = a.gpus * (now - a.started_at)
    if old is not None:
        value += old.gpu_seconds * 0.5 ** ((now - old.at) / half_life)
    state.usage[(a.team, a.user)] = UsageRecord(a.team, a.user, value, now)
    return a


def _on_event(state: _State, rec: Recorder, ev: Event, half_life: float) -> None:
    now, kind, job_id, token = ev
    if kind == _ARRIVE:
        state.queue[job_id] = state.jobs[job_id]
    elif state.token.get(job_id) == token and job_id in state.running:
        _end(state, rec, job_id, now, half_life)
        if kind == _FINISH:
            rec.finish[job_id] = now
        else:  # grace over: the victim is gone and goes back to the queue
            state.attempts[job_id] = state.attempts.get(job_id, 0) + 1
            state.queue[job_id] = replace(state.jobs[job_id], attempt=state.attempts[job_id])


def _apply(
    state: _State, result: CycleResult, trace: dict[str, TraceJob], now: float, rec: Recorder
) -> Iterator[Event]:
    """Apply the cycle's decisions; yield the events they schedule."""
    for p in result.preempted:
        a = state.running[p.job_id]
        rec.preemptions += 1
        state.running[p.job_id] = replace(
            a, terminating_until=now + p.grace_s, preempted_for=p.by_job
        )
        if a.started_at + trace[a.job_id].runtime_s <= now + p.grace_s:
            continue  # it finishes within the grace period anyway
        state.token[a.job_id] += 1
        yield (now + p.grace_s, _GRACE_END, a.job_id, state.token[a.job_id])
    for adm in result.admitted:
        job = state.queue.pop(adm.job_id)
        state.running[job.id] = Allocation(
            job.id,
            job.team,
            job.user,
            adm.node,
            adm.gpu_indices,
            now,
            job.max_runtime_s,
            job.priority,
            job.preemptible,
            adm.borrowed,
            job.cpu_milli,
            job.memory_mib,
            job.sweep_id,
            placements=adm.placements,
        )
        for node, gpus in adm.pods:
            state.node_free[node] -= len(gpus)
        state.token[job.id] = state.token.get(job.id, 0) + 1
        rec.started(job.id, now)
        yield (now + trace[job.id].runtime_s, _FINISH, job.id, state.token[job.id])


def as_gang(gpus: int, widest: int) -> tuple[int, int]:
    """``(pods, GPUs per pod)`` for a job of ``gpus`` GPUs on nodes of at most ``widest``.

    >>> as_gang(8, 8), as_gang(32, 8), as_gang(12, 8), as_gang(12, 0)
    ((1, 8), (4, 8), (2, 6), (1, 12))
    """
    if widest <= 0 or gpus <= widest:
        return 1, gpus
    pods = math.ceil(gpus / widest)
    return pods, math.ceil(gpus / pods)


def simulate(
    jobs: list[TraceJob],
    nodes: tuple[Node, ...],
    config: Config,
    runtime_error: float = 1.0,
    seed: int = 0,
    quotas: dict[str, TeamQuota] | None = None,
) -> Metrics:
    """Replay ``jobs`` on ``nodes`` under ``config`` and return what was measured."""
    return replay(jobs, nodes, config, runtime_error, seed, quotas)[0]


def replay(
    jobs: list[TraceJob],
    nodes: tuple[Node, ...],
    config: Config,
    runtime_error: float = 1.0,
    seed: int = 0,
    quotas: dict[str, TeamQuota] | None = None,
) -> tuple[Metrics, Recorder]:
    """Replay ``jobs``; jobs the cluster could never hold, even as gangs, are dropped (counted
    in ``Metrics.dropped``, by reason in ``Metrics.dropped_reasons``).

    Deterministic for a given ``seed`` (it draws the declared runtimes). The ``Recorder``
    keeps every attempt's GPU interval, for checking invariants.
    """
    rng = random.Random(seed)  # noqa: S311 - simulation draws, not secrets
    node_list = list(nodes)
    trace: dict[str, TraceJob] = {}
    state = _State(jobs={}, node_free={n.name: len(n.gpus) for n in nodes})
    events: list[tuple[float, int, int, str, int]] = []
    dropped: Counter[str] = Counter()
    widest = max((len(n.gpus) for n in nodes), default=0)
    for j in jobs:
        declared = j.runtime_s * (1.0 + rng.random() * runtime_error)
        pods, per_pod = as_gang(j.gpus, widest)
        q = QueuedJob(
            j.id,
            j.team,
            j.user,
            per_pod,
            declared,
            j.submit_s,
            j.models,
            j.cpu_milli,
            j.memory_mib,
            nodes=pods,
        )
        reason = static_reason(node_list, q)
        if reason is not None:
            dropped[str(reason)] += 1
            continue
        trace[j.id], state.jobs[j.id] = j, q
        events.append((j.submit_s, _ARRIVE, len(events), j.id, 0))
    heapq.heapify(events)
    seq = len(events)
    rec = Recorder(sum(len(n.gpus) for n in nodes), {n.name: n for n in nodes})
    half_life = config.usage_half_life_s
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            t, kind, _, job_id, token = heapq.heappop(events)
            _on_event(state, rec, (t, kind, job_id, token), half_life)
        if not state.queue:
            rec.observe(now, state.node_free, state.queue, None)
            continue
        snap = Snapshot(
            now,
            nodes,
            tuple(state.queue.values()),
            tuple(state.running.values()),
            usage=tuple(state.usage.values()),
            quotas=quotas or {},
            config=config,
        )
        t0 = time.perf_counter()
        result = plan_cycle(snap)
        rec.cycle(time.perf_counter() - t0, len(result.admitted) + len(result.preempted))
        for ev_t, kind, job_id, token in _apply(state, result, trace, now, rec):
            heapq.heappush(events, (ev_t, kind, seq, job_id, token))
            seq += 1
        rec.observe(now, state.node_free, state.queue, result)
    multi_node = sum(1 for q in state.jobs.values() if q.nodes > 1)
    return rec.metrics(trace, dropped, multi_node), rec
