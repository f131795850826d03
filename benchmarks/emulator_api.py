"""The Kubernetes emulator under 1,000 Jobs: latency of what clients ask, p50 and p99.

    .venv/bin/python benchmarks/emulator_api.py [--jobs 1000] [--baseline REV] [--budget 20]

Each run starts the emulator in real time (its controller ticking every 0.2 s, as in
``manage.py cluster emulate``), creates the Jobs over HTTP (none needs a GPU, so about 440
run and the rest wait as unschedulable: "Too many pods"), lets the controller take a few
passes, then measures over keep-alive HTTP, one request at a time while the controller keeps
ticking: GET one Job, LIST all Jobs, LIST all Pods, PATCH a Job's label (a write: it waits
for a controller pass to finish), and a watch's latency (open a watch, create a Job, time
until its ADDED event arrives). Each operation gets at most ``--budget`` seconds.

Baselines in the same run: the same code with 100 Jobs, and, with ``--baseline REV`` (default
``c5016e6``, the emulator before issue 13's fixes, when that commit is in the repository),
the emulator of that revision (``git archive``) with the same number of Jobs. Each tree runs
in its own subprocess. Part of ``make bench`` (``python -m benchmarks emulator_api``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "c5016e6"

CHILD = r"""
import http.client, json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from kube_emulator import start_emulator

jobs, budget = int(sys.argv[2]), float(sys.argv[3])
NS = "karimasu-jobs"
handle = start_emulator(tick_interval=0.2)
host, port = handle.host, handle.port

LIMITS = {"cpu": "100m", "memory": "64Mi"}
def job(name):
    container = {"name": "main", "image": "busybox:1.36", "resources": {"limits": LIMITS}}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name,
                         "annotations": {"karimasu.io/sim-duration-seconds": "3600"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                                                              "containers": [container]}}}}

conn = http.client.HTTPConnection(host, port, timeout=120)
def call(method, path, body=None, ctype="application/json"):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": ctype} if data is not None else {}
    start = time.perf_counter()
    conn.request(method, path, data, headers)
    response = conn.getresponse()
    payload = response.read()
    elapsed = time.perf_counter() - start
    assert response.status < 300, (response.status, payload[:300])
    return elapsed, payload

jobs_path = f"/apis/batch/v1/namespaces/{NS}/jobs"
created = [call("POST", jobs_path, job(f"bench-{i:04d}"))[0] for i in range(jobs)]
time.sleep(2.0)

def sample(op, count):
    samples, deadline = [], time.perf_counter() + budget
    for i in range(count):
        samples.append(op(i))
        if time.perf_counter() > deadline and len(samples) >= 3:
            break
    return samples

def watch_latency(i):
    rv = json.loads(call("GET", jobs_path + "?limit=1")[1])["metadata"]["resourceVersion"]
    watcher = http.client.HTTPConnection(host, port, timeout=120)
    watcher.request("GET", f"{jobs_path}?watch=true&resourceVersion={rv}&timeoutSeconds=60")
    stream = watcher.getresponse()
    start = time.perf_counter()
    call("POST", jobs_path, job(f"watched-{i:04d}"))
    while True:
        line = stream.fp.readline()
        if line.startswith(b"{"):  # the raw stream: chunk sizes in between
            event = json.loads(line)
            if event["object"]["metadata"]["name"] == f"watched-{i:04d}":
                break
    elapsed = time.perf_counter() - start
    watcher.close()
    return elapsed

results = {
    "create": created,
    "get": sample(lambda i: call("GET", f"{jobs_path}/bench-{i % jobs:04d}")[0], 200),
    "list jobs": sample(lambda i: call("GET", jobs_path)[0], 30),
    "list pods": sample(lambda i: call("GET", f"/api/v1/namespaces/{NS}/pods")[0], 30),
    "patch": sample(lambda i: call("PATCH", f"{jobs_path}/bench-{i % jobs:04d}",
                                   {"metadata": {"labels": {"round": str(i)}}},
                                   "application/merge-patch+json")[0], 100),
    "watch": sample(watch_latency, 20),
}
handle.close()
print(json.dumps(results))
"""

OPS = ("create", "get", "list jobs", "list pods", "patch", "watch")


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(code: Path, jobs: int, budget: float) -> dict[str, list[float]]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(code), str(jobs), str(budget)],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(label: str, results: dict[str, list[float]]) -> None:
    parts = [
        f"{op} p50 {statistics.median(results[op]) * 1000:.1f} ms "
        f"p99 {_pct(results[op], 0.99) * 1000:.1f} ms (n={len(results[op])})"
        for op in OPS
    ]
    print(f"emulator_api {label}: " + "; ".join(parts), flush=True)


def run(jobs: int = 1000, baseline: str | None = DEFAULT_BASELINE, budget: float = 20) -> None:
    """Measure this tree at ``jobs`` and 100 Jobs, and ``baseline`` at ``jobs``."""
    current = measure(ROOT, jobs, budget)
    report(f"this tree, {jobs} Jobs", current)
    report("this tree, 100 Jobs", measure(ROOT, 100, budget))
    worst = max(_pct(current[op], 0.99) for op in OPS)
    print(f"emulator_api: worst p99 at {jobs} Jobs {worst * 1000:.0f} ms (goal: under 1000 ms)")
    if not baseline:
        return
    known = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{baseline}^{{commit}}"], check=False
    )
    if known.returncode != 0:
        print(f"emulator_api: baseline {baseline} is not in this repository: skipped")
        return
    with tempfile.TemporaryDirectory(prefix="emulator-baseline-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", baseline, "kube_emulator"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        report(f"baseline {baseline}, {jobs} Jobs", measure(Path(tmp), jobs, budget))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="a git revision, or ''")
    parser.add_argument("--budget", type=float, default=20, help="seconds per operation")
    args = parser.parse_args()
    run(args.jobs, args.baseline or None, args.budget)


if __name__ == "__main__":
    main()
