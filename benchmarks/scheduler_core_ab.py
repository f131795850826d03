"""The scheduling core against an older copy of itself, alternating in one process.

    git archive <commit> scheduler | tar -x -C /tmp/core-base
    python -m benchmarks.scheduler_core_ab /tmp/core-base [rounds]

Both trees' ``plan_cycle`` (each with its own ``scheduler.sim.synthetic``, so enums and
types match their core) plan the issue 17 snapshot (10,000 queued, 200 x 8 GPUs, 1,000
bookings), 10 cycles per round, rounds alternating; prints whether the decisions are the
same, the p50 of each round and the ratio. ``CPU=1`` times with ``time.process_time``
(less sensitive to other processes on a shared machine than wall time). Needs no Django.
This tree's core runs compiled when built (``scripts/build_core.py``), an exported tree's as
Python: ``KARIMASU_PURE_CORE=1`` compares Python with Python.
"""

from __future__ import annotations

import gc
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

REPEAT = 10


def _load(path: str) -> tuple[Callable[[Any], Any], Callable[..., Any]]:
    for name in [m for m in sys.modules if m == "scheduler" or m.startswith("scheduler.")]:
        del sys.modules[name]
    sys.path.insert(0, path)
    try:
        cycle = importlib.import_module("scheduler.core.cycle")
        synthetic = importlib.import_module("scheduler.sim.synthetic")
    finally:
        sys.path.remove(path)
    return cycle.plan_cycle, synthetic.synthetic_snapshot


def _rows(result: Any) -> tuple[object, ...]:
    return (
        [(a.job_id, a.node, a.gpu_indices, a.borrowed, a.placements) for a in result.admitted],
        [(p.job_id, str(p.reason), p.by_job, p.grace_s) for p in result.preempted],
        [
            (w.job_id, str(w.reason), w.detail, w.position, w.eta, w.planned_node)
            for w in result.waiting
        ],
    )


def run(base: str, rounds: int = 5, new: str = ".") -> None:
    clock = time.process_time if os.environ.get("CPU") else time.perf_counter
    old_plan, old_synth = _load(base)
    new_plan, new_synth = _load(new)
    size = {"queued": 10_000, "nodes": 200, "gpus_per_node": 8, "reservations": 1000}
    old_snap, new_snap = old_synth(**size), new_synth(**size)
    same = _rows(old_plan(old_snap)) == _rows(new_plan(new_snap))
    print(f"same decisions: {same}")
    gc.freeze()

    def p50(plan: Callable[[Any], Any], snap: Any) -> float:
        times = []
        for _ in range(REPEAT):
            start = clock()
            plan(snap)
            times.append((clock() - start) * 1000)
        return statistics.median(times)

    ratios = []
    for r in range(rounds):
        old, now = p50(old_plan, old_snap), p50(new_plan, new_snap)
        ratios.append(now / old)
        print(f"round {r}: old {old:.1f} ms, new {now:.1f} ms, ratio {now / old:.3f}", flush=True)
    print(f"median ratio {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
