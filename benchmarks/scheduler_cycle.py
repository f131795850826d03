"""Scheduler core: cycle latency as a ratio to sorting the queue, and best-fit vs worst-fit
packing replayed on the Alibaba openb trace.

(1) baseline: ``sorted(queue, key=(-priority, submit time))``, the least any scheduler does
    measured: one full ``plan_cycle`` (order, gates, placement, preemption, shadow schedule)
    on a synthetic snapshot: 50 nodes x 8 GPUs about 70% busy, 1,000 queued jobs, 100
    bookings; then the issue's goal size (10,000 queued, 200 x 8 GPUs, 1,000 bookings).
(2) the first 4,000 pods of ``alibaba_v2023_openb_pod_list_default.csv`` (fractional GPUs
    rounded up to one) on every 32nd openb node (38 nodes, 187 GPUs), arrivals 8x denser,
    under the ``default`` policy with each packing.

Needs no Django: plain ``python -c "from benchmarks import scheduler_cycle as b; b.run()"``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import scheduler.core as core
from scheduler.core import Packing, plan_cycle
from scheduler.sim.simulator import POLICIES, simulate
from scheduler.sim.synthetic import synthetic_snapshot
from scheduler.sim.traces import ALIBABA_PODS, load_alibaba_nodes, load_alibaba_pods

REPEATS = 15
PODS, NODE_EVERY, DENSER = 4000, 32, 8.0


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _cycle_latency() -> None:
    snap = synthetic_snapshot(queued=1000, nodes=50, gpus_per_node=8, reservations=100)

    def plain_sort() -> object:
        return sorted(snap.queue, key=lambda j: (-j.priority, j.submitted_at, j.id))

    base = _median_s(plain_sort, REPEATS * 20)
    cycle = _median_s(lambda: plan_cycle(snap), REPEATS)
    result = plan_cycle(snap)
    print(
        f"scheduler_cycle 1k queued, 50x8 GPUs: p50 {cycle * 1000:.1f} ms "
        f"= {cycle / base:.0f}x a plain sort of the queue ({base * 1000:.2f} ms); "
        f"{len(result.admitted)} admitted, {len(result.preempted)} preempted, "
        f"{len(result.rows)} waiting"
    )
    big = synthetic_snapshot(queued=10_000, nodes=200, gpus_per_node=8, reservations=1000)
    big_base = _median_s(
        lambda: sorted(big.queue, key=lambda j: (-j.priority, j.submitted_at, j.id)), 20
    )
    big_cycle = _median_s(lambda: plan_cycle(big), 3)
    print(
        f"scheduler_cycle 10k queued, 200x8 GPUs, 1k bookings: p50 {big_cycle * 1000:.0f} ms "
        f"= {big_cycle / big_base:.0f}x a plain sort ({big_base * 1000:.1f} ms); core "
        f"{'compiled (mypyc)' if core.COMPILED else 'pure Python'}"
    )


def _packing() -> None:
    if not ALIBABA_PODS.exists():
        print("scheduler_cycle packing: Alibaba trace not found, skipped")
        return
    jobs = [replace(j, submit_s=j.submit_s / DENSER) for j in load_alibaba_pods(limit=PODS)]
    nodes = load_alibaba_nodes(every=NODE_EVERY)
    gpus = sum(len(n.gpus) for n in nodes)
    print(
        f"scheduler_cycle packing: {len(jobs)} openb pods, {len(nodes)} nodes / {gpus} GPUs, "
        f"arrivals {DENSER:g}x denser, default policy"
    )
    print(
        f"  {'packing':<10} {'avg wait s':>11} {'max wait s':>11} {'avg JCT s':>10} "
        f"{'util(load)':>10} {'frag':>6} {'frag GPUs':>9} {'cycle ms':>8} {'replay s':>8}"
    )
    for packing in (Packing.BEST_FIT, Packing.WORST_FIT):
        start = time.perf_counter()
        m = simulate(jobs, nodes, replace(POLICIES["default"], packing=packing))
        took = time.perf_counter() - start
        print(
            f"  {packing.value:<10} {m.avg_wait_s:>11.0f} {m.max_wait_s:>11.0f} "
            f"{m.avg_jct_s:>10.0f} {m.load_utilization:>10.3f} {m.fragmentation:>6.3f} "
            f"{m.fragmented_gpu_share:>9.3f} {m.cycle_ms_p50:>8.2f} {took:>8.1f}"
        )


def run() -> None:
    _cycle_latency()
    _packing()
