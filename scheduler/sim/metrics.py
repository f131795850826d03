"""What a replay measured: waits, completion times, utilization, fragmentation, fairness.

- ``wait``: first start minus arrival (queueing delay); ``jct``: finish minus arrival.
- ``dropped``: jobs the cluster could never hold, even as a gang; ``dropped_reasons`` counts
  them by the core's static reason (``too-big``, ``no-model``); ``multi_node_jobs``: jobs
  replayed as gangs.
- ``gpu_utilization``: GPU-seconds held by jobs (preempted attempts included) over total
  GPUs times the makespan (first arrival to last finish). ``load_utilization`` is the same
  up to the last arrival only: a long job running alone at the end of a replay (the openb
  trace has pods that live the whole trace) drags ``gpu_utilization`` toward zero for every
  policy alike, while the window when work keeps arriving is where policies differ.
- ``fragmentation``: over the time some job waits for GPUs, the time-weighted share of free
  GPUs the highest-ranked such job cannot use (on nodes with too few free GPUs or the wrong
  model); ``fragmented_gpu_share`` is the same GPUs over all GPUs, averaged over the run.
- ``jain_fairness``: Jain's index across teams of each team's mean ``runtime / jct`` (1.0
  when every team's jobs are slowed alike).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from scheduler.core.decisions import WAITING_FOR_GPUS, CycleResult
from scheduler.core.snapshot import Node, QueuedJob
from scheduler.sim.traces import TraceJob


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; 0.0 for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.0
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2), 1.0 for no or all-zero values."""
    square = sum(v * v for v in values)
    return 1.0 if not values or square == 0 else sum(values) ** 2 / (len(values) * square)


@dataclass(frozen=True)
class Metrics:
    jobs: int
    dropped: int
    makespan_s: float
    avg_wait_s: float
    p95_wait_s: float
    max_wait_s: float
    avg_jct_s: float
    p50_jct_s: float
    p95_jct_s: float
    p99_jct_s: float
    gpu_utilization: float
    load_utilization: float
    fragmentation: float
    fragmented_gpu_share: float
    jain_fairness: float
    preemptions: int
    cycles: int
    cycle_ms_p50: float
    cycle_ms_p99: float
    decisions_per_s: float
    p99_wait_s: float = 0.0
    multi_node_jobs: int = 0  # replayed as gangs (wider than every node)
    dropped_reasons: dict[str, int] = field(default_factory=dict)  # reason -> jobs

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Recorder:
    """Collects what ``Metrics`` reports while the simulator runs."""

    total_gpus: int
    nodes: Mapping[str, Node]
    first_start: dict[str, float] = field(default_factory=dict)
    finish: dict[str, float] = field(default_factory=dict)
    busy_gpu_s: float = 0.0
    preemptions: int = 0
    cycle_s: list[float] = field(default_factory=list)
    decisions: int = 0
    frag_t: float = 0.0  # time with a job waiting for GPUs
    frag_sum: float = 0.0  # integral of the unusable share of free GPUs over that time
    frag_gpu_sum: float = 0.0  # integral of unusable free GPUs / all GPUs
    # (job id, node, GPU indices, start, end) of every attempt: for invariant checks.
    intervals: list[tuple[str, str, tuple[int, ...], float, float]] = field(default_factory=list)
    _last: tuple[float, float, float, bool] = (0.0, 0.0, 0.0, False)

    def started(self, job_id: str, now: float) -> None:
        self.first_start.setdefault(job_id, now)

    def held(self, job_id: str, node: str, gpus: tuple[int, ...], start: float, end: float) -> None:
        self.busy_gpu_s += len(gpus) * (end - start)
        self.intervals.append((job_id, node, gpus, start, end))

    def cycle(self, seconds: float, decisions: int) -> None:
        self.cycle_s.append(seconds)
        self.decisions += decisions

    def observe(
        self,
        now: float,
        node_free: Mapping[str, int],
        queue: Mapping[str, QueuedJob],
        result: CycleResult | None,
    ) -> None:
        """Integrate the last fragmentation reading up to ``now`` and take a new one."""
        t, share, gpu_share, blocked = self._last
        if blocked:
            self.frag_t += now - t
            self.frag_sum += share * (now - t)
            self.frag_gpu_sum += gpu_share * (now - t)
        head = None
        if result is not None:
            head = next((queue[row[0]] for row in result.rows if row[1] in WAITING_FOR_GPUS), None)
        if head is None:
            self._last = (now, 0.0, 0.0, False)
            return
        free = sum(node_free.values())
        unusable = sum(
            f
            for name, f in node_free.items()
            if f < head.gpus or (head.models and self.nodes[name].gpu_model not in head.models)
        )
        share = unusable / free if free else 0.0
        self._last = (now, share, unusable / self.total_gpus, True)

    def metrics(
        self, trace: Mapping[str, TraceJob], dropped: Mapping[str, int], multi_node: int = 0
    ) -> Metrics:
        done = [j for j in trace.values() if j.id in self.finish]
        waits = [self.first_start[j.id] - j.submit_s for j in done]
        jcts = [self.finish[j.id] - j.submit_s for j in done]
        start = min((j.submit_s for j in done), default=0.0)
        makespan = max(self.finish.values(), default=0.0) - start
        speed: dict[str, list[float]] = defaultdict(list)
        for j, jct in zip(done, jcts, strict=True):
            speed[j.team].append(j.runtime_s / jct if jct > 0 else 1.0)
        cycle_total = sum(self.cycle_s)
        last_arrival = max((j.submit_s for j in done), default=0.0)
        window_gpu_s = sum(
            len(g) * (min(e, last_arrival) - min(s, last_arrival))
            for _, _, g, s, e in self.intervals
        )
        return Metrics(
            jobs=len(done),
            dropped=sum(dropped.values()),
            dropped_reasons=dict(sorted(dropped.items())),
            multi_node_jobs=multi_node,
            makespan_s=makespan,
            avg_wait_s=sum(waits) / len(waits) if waits else 0.0,
            p95_wait_s=percentile(waits, 95),
            p99_wait_s=percentile(waits, 99),
            max_wait_s=max(waits, default=0.0),
            avg_jct_s=sum(jcts) / len(jcts) if jcts else 0.0,
            p50_jct_s=percentile(jcts, 50),
            p95_jct_s=percentile(jcts, 95),
            p99_jct_s=percentile(jcts, 99),
            gpu_utilization=self.busy_gpu_s / (self.total_gpus * makespan) if makespan else 0.0,
            load_utilization=(
                window_gpu_s / (self.total_gpus * (last_arrival - start))
                if last_arrival > start
                else 0.0
            ),
            fragmentation=self.frag_sum / self.frag_t if self.frag_t else 0.0,
            fragmented_gpu_share=self.frag_gpu_sum / makespan if makespan else 0.0,
            jain_fairness=jain([sum(v) / len(v) for v in speed.values()]),
            preemptions=self.preemptions,
            cycles=len(self.cycle_s),
            cycle_ms_p50=percentile(self.cycle_s, 50) * 1000,
            cycle_ms_p99=percentile(self.cycle_s, 99) * 1000,
            decisions_per_s=self.decisions / cycle_total if cycle_total else 0.0,
        )
