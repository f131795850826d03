"""`manage.py sched simulate|bench` — the production scheduling core on traces and
synthetic snapshots (no database, no cluster: the same pure `plan_cycle`).

    sched simulate --trace FILE --trace-format philly|alibaba [--clusters VC1,VC2]
                   [--nodes N --gpus-per-node G | --node-list FILE] [--policy NAME]
                   [--runtime-estimate-error X] [--limit N] [--seed S] --json
    sched bench --queued 10000 --nodes 200 --gpus-per-node 8 --reservations 1000 --json
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

import scheduler.core as core
from scheduler.core.cycle import plan_cycle
from scheduler.sim import traces
from scheduler.sim.simulator import POLICIES, simulate
from scheduler.sim.synthetic import synthetic_snapshot

SIMULATE_KEYS = [
    "jobs",
    "dropped",
    "dropped_reasons",
    "multi_node_jobs",
    "avg_jct_s",
    "p50_jct_s",
    "p95_jct_s",
    "p99_jct_s",
    "avg_wait_s",
    "p99_wait_s",
    "max_wait_s",
    "makespan_s",
    "gpu_utilization",
    "jain_fairness",
    "preemptions",
    "cycle_ms_p50",
    "cycle_ms_p99",
    "decisions_per_s",
]


class Command(BaseCommand):
    help = "Replay a GPU-cluster trace through the scheduling core, or time its cycles."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sim = sub.add_parser("simulate", help="Replay a trace.")
        sim.add_argument("--trace", required=True, type=Path)
        sim.add_argument("--trace-format", required=True, choices=["philly", "alibaba"])
        sim.add_argument("--clusters", default="", help="Philly virtual clusters, comma-separated.")
        sim.add_argument("--nodes", type=int, help="Uniform nodes (with --gpus-per-node).")
        sim.add_argument("--gpus-per-node", type=int, default=8)
        sim.add_argument("--node-list", type=Path, help="Alibaba node list CSV.")
        sim.add_argument(
            "--node-every",
            type=int,
            default=1,
            help="Keep every Nth node of the node list (to scale it down).",
        )
        sim.add_argument("--policy", default="default", choices=sorted(POLICIES))
        sim.add_argument(
            "--runtime-estimate-error",
            type=float,
            default=1.0,
            help="Declared runtime = actual x U[1, 1+X].",
        )
        sim.add_argument("--limit", type=int, default=None)
        sim.add_argument("--seed", type=int, default=0)
        sim.add_argument("--json", action="store_true")
        bench = sub.add_parser("bench", help="Time full cycles on a synthetic snapshot.")
        bench.add_argument("--queued", type=int, default=10_000)
        bench.add_argument("--nodes", type=int, default=200)
        bench.add_argument("--gpus-per-node", type=int, default=8)
        bench.add_argument("--reservations", type=int, default=1000)
        bench.add_argument("--repeat", type=int, default=5)
        bench.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        result = (
            self._simulate(options) if options["action"] == "simulate" else self._bench(options)
        )
        self.stdout.write(
            json.dumps(result)
            if options["json"]
            else "\n".join(f"{k}: {v}" for k, v in result.items())
        )

    def _simulate(self, o: dict[str, Any]) -> dict[str, Any]:
        if not o["trace"].is_file():
            raise CommandError(f"No trace file {o['trace']}")
        try:
            if o["trace_format"] == "philly":
                clusters = frozenset(c for c in o["clusters"].split(",") if c) or None
                jobs = traces.load_philly(o["trace"], clusters=clusters, limit=o["limit"])
            else:
                jobs = traces.load_alibaba_pods(o["trace"], limit=o["limit"])
            if o["node_list"]:
                nodes = traces.load_alibaba_nodes(o["node_list"], every=o["node_every"])
            elif o["nodes"]:
                nodes = traces.uniform_nodes(o["nodes"], o["gpus_per_node"])
            else:
                raise CommandError("Give --nodes N (with --gpus-per-node) or --node-list FILE.")
        except traces.TraceError as exc:
            raise CommandError(str(exc)) from exc
        if not jobs:
            raise CommandError("The trace selection has no jobs.")
        metrics = simulate(
            jobs,
            nodes,
            POLICIES[o["policy"]],
            runtime_error=o["runtime_estimate_error"],
            seed=o["seed"],
        ).as_dict()
        return {key: metrics[key] for key in SIMULATE_KEYS}

    def _bench(self, o: dict[str, Any]) -> dict[str, Any]:
        snapshot = synthetic_snapshot(
            queued=o["queued"],
            nodes=o["nodes"],
            gpus_per_node=o["gpus_per_node"],
            reservations=o["reservations"],
        )
        plan_cycle(snapshot)  # warm up
        gc.freeze()  # as the worker does at start: keep full collections out of the timing
        times = []
        for _ in range(max(o["repeat"], 1)):
            start = time.perf_counter()
            plan_cycle(snapshot)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        return {
            "queued": o["queued"],
            "nodes": o["nodes"],
            "gpus_per_node": o["gpus_per_node"],
            "reservations": o["reservations"],
            "cycle_ms_p50": round(statistics.median(times), 2),
            "cycle_ms_p99": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
            # The core's hot modules compiled with mypyc (scripts/build_core.py), or Python.
            "compiled": core.COMPILED,
        }
