"""`manage.py sched simulate`: its flags and JSON fields stay stable; wide jobs run as gangs."""

from __future__ import annotations

import json
from io import StringIO

from django.core.management import call_command

STABLE_KEYS = {
    "jobs",
    "avg_jct_s",
    "p50_jct_s",
    "p95_jct_s",
    "p99_jct_s",
    "avg_wait_s",
    "max_wait_s",
    "makespan_s",
    "gpu_utilization",
    "jain_fairness",
    "preemptions",
    "cycle_ms_p50",
    "cycle_ms_p99",
    "decisions_per_s",
}


def _simulate(path, *extra: str) -> dict:
    out = StringIO()
    call_command(
        "sched", "simulate", "--trace", str(path), "--trace-format", "philly",
        "--gpus-per-node", "8", "--json", *extra, stdout=out,
    )  # fmt: skip
    return json.loads(out.getvalue())


def test_simulate_replays_wide_jobs_as_gangs_and_reports_drops(tmp_path):
    trace = tmp_path / "philly.csv"
    trace.write_text(
        "timestamp,duration,num_gpus,gpu_time,cluster\n"
        "2017-10-01 00:00:00,100,4,400,vc1\n"
        "2017-10-01 00:00:10,200,16,3200,vc1\n"
        "2017-10-01 00:00:20,50,1,50,vc2\n"
        "2017-10-01 00:00:30,50,32,1600,vc2\n"
    )
    result = _simulate(trace, "--nodes", "2", "--policy", "default")
    assert set(result) >= STABLE_KEYS
    assert (result["jobs"], result["dropped"], result["multi_node_jobs"]) == (3, 1, 1)
    assert result["dropped_reasons"] == {"too-big": 1}  # 32 GPUs on 2 x 8: never fits
    fifo = _simulate(trace, "--nodes", "4", "--policy", "fifo", "--runtime-estimate-error", "0")
    assert (fifo["jobs"], fifo["dropped"], fifo["multi_node_jobs"]) == (4, 0, 2)
