"""Load test of the API's hot path: gunicorn on PostgreSQL, driven by wrk over loopback.

    .venv/bin/python benchmarks/api_load.py [--code DIR ...] [--seconds 10] [--clients 50]
        [--rounds 1] [--database postgres://.../karimasu_load] [--cache redis://.../10]

For each code tree given (default: this checkout; pass an exported older commit first to
compare, e.g. `git archive 7e2947c | tar -x -C /tmp/kms-base`), it migrates a fresh
PostgreSQL database (`<database>_<n>`, one per tree), seeds it (SEED below: a user with a
token in two teams; `--nodes` (default 8) nodes of 8 GPUs with telemetry; 50 of the user's
jobs across states, 12 of them holding GPUs; 50 jobs of a team the user is not in), starts
`gunicorn portal.wsgi --workers 2 --threads 4` (the Procfile's) on 127.0.0.1 (DEBUG off,
the given CACHE_URL, flushed first when it is Redis), and runs `wrk -t2 -c<clients>
-d<seconds>s --timeout 10s --latency` against /healthz, /api/v1/me/, /api/v1/jobs/ and
/api/v1/nodes/ with the Bearer token, after a 2 s warm-up each. Every round runs every
tree in turn (so a busy machine slows them alike). Prints requests/s, p99, the gunicorn
processes' CPU time per request (from /proc, so Linux only; it depends far less than
requests/s on what else the machine runs), the ratio to /healthz of the same tree and round,
and the ratios to the first tree in the same round. wrk waits up to 10 s for a response (its
default, 2 s, drops the slowest requests from the percentiles); timeouts are printed. Needs
`wrk` (Debian: apt-get install wrk). The throttle rates are raised so that the load
generator is not throttled (the throttle still counts every request).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

URLS = ["/healthz", "/api/v1/me/", "/api/v1/jobs/", "/api/v1/nodes/"]
PYTHON = sys.executable
# Run with `manage.py shell -c` in each tree (so only models both trees have are used);
# prints the token last.
SEED = """
import os
from datetime import timedelta
from django.utils import timezone
from portal.accounts.models import Membership, Team, User
from portal.accounts import services
from scheduler.models import Gpu, Job, Node, QueueOrder
from scheduler.telemetry.models import GpuState

now = timezone.now()
user = User.objects.create_user(
    "bench", email="bench@example.com", first_name="Ben", last_name="Ch"
)
team = Team.objects.create(slug="bench", name="Bench")
Membership.objects.create(team=team, user=user, role="lead")
other = User.objects.create_user("other")
other_team = Team.objects.create(slug="other", name="Other")
Membership.objects.create(team=other_team, user=other, role="lead")
Membership.objects.create(team=other_team, user=user, role="member")
nodes = []
NODES = int(os.environ["BENCH_NODES"])
for n in range(NODES):
    node = Node.objects.create(
        name=f"gpu-{n:02d}", gpu_model="NVIDIA-A100-SXM4-80GB", gpu_memory_mb=81920,
        gpu_capacity=8, gpu_allocatable=8, cpu_allocatable_millis=64000,
        memory_allocatable_mb=512 * 1024, ready=True, first_seen_at=now - timedelta(days=3),
        last_seen_at=now, taints=[], labels={"zone": "a"},
    )
    gpus = Gpu.objects.bulk_create(
        Gpu(node=node, index=i, uuid=f"GPU-{n:02d}-{i}", model=node.gpu_model, memory_mb=81920)
        for i in range(8)
    )
    GpuState.objects.bulk_create(
        GpuState(gpu=g, at=now - timedelta(seconds=5), utilization=42.0, memory_used_mib=1000.0,
                 memory_total_mib=81920.0, temperature_c=55.0, power_w=250.0)
        for g in gpus
    )
    nodes.append(node)
# 50 jobs of the user's own across states; running ones hold GPUs on the nodes.
statuses = (
    ["queued"] * 10 + ["running"] * 10 + ["succeeded"] * 15 + ["failed"] * 8
    + ["cancelled"] * 5 + ["admitted"] * 2
)
jobs = []
for i, status in enumerate(statuses):
    on_node = status in ("running", "admitted") and bool(nodes)
    node = nodes[i % NODES] if on_node else None
    jobs.append(Job(
        name=f"train-{i}", owner=user, team=team, image="pytorch/pytorch:2.4",
        command=["python", "train.py"], args=["--epochs", "10"], env={"SEED": str(i)},
        gpus=1, gpu_models=[], max_runtime_s=3600, status=status,
        eta=now + timedelta(minutes=i) if status == "queued" else None,
        node=node, gpu_indices=[i // 8] if on_node else [],
        exit_code=0 if status == "succeeded" else (1 if status == "failed" else None),
        submitted_at=now - timedelta(minutes=100 - i),
        started_at=now - timedelta(minutes=50) if status in ("running", "succeeded", "failed")
        else None,
        finished_at=now - timedelta(minutes=5) if status in ("succeeded", "failed", "cancelled")
        else None,
    ))
# Another team's jobs the user cannot see (the visibility filter has work to do).
other_only = Team.objects.create(slug="elsewhere", name="Elsewhere")
Membership.objects.create(team=other_only, user=other, role="lead")
for i in range(50):
    jobs.append(Job(name=f"x-{i}", owner=other, team=other_only, image="img", gpus=1,
                    max_runtime_s=3600, status="succeeded", submitted_at=now - timedelta(hours=2)))
Job.objects.bulk_create(jobs)
# The line a cycle would leave: the queued jobs in submission order (a 10k line as a cycle
# of the issue's size would, the rest stand-ins: the list decodes it whole).
queued = [j.pk for j in jobs if j.status == "queued"]
line = queued + list(range(10**9, 10**9 + 10_000 - len(queued)))
QueueOrder.record(now, line, list(range(len(line))))
print(services.create_api_token(user, name="bench", now=now)[1])
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Result(NamedTuple):
    rate: float  # requests/s
    p99: float  # ms
    cpu_ms: float  # CPU time of the gunicorn processes per request, ms
    timeouts: int  # requests wrk gave up on (over --timeout)


def server_cpu_seconds(master: int) -> float:
    """User + system CPU seconds of gunicorn's master and workers so far (Linux /proc)."""
    pids = [str(master), *Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(url: str, token: str, seconds: int, clients: int, master: int) -> Result:
    cpu_before = server_cpu_seconds(master)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "--latency", "-H",
         f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = server_cpu_seconds(master) - cpu_before
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert non2xx is None, f"{url}: {non2xx.group(0)}"
    timeouts = re.search(r"timeout (\d+)", out)
    return Result(
        rate,
        float(p99.group(1)) * scale,
        1000 * cpu / max(total, 1),
        int(timeouts.group(1)) if timeouts else 0,
    )


def tree_env(code: Path, db_url: str, cache_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "CACHE_URL": cache_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-not-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "API_THROTTLE_USER": "100000000/min",
        "API_THROTTLE_ANON": "100000000/min",
        "KARIMASU_VAR_DIR": f"/tmp/karimasu-bench-var-{os.getpid()}-{code.name}",
        "PYTHONPATH": str(code),
    }


def prepare_tree(code: Path, db_url: str, cache_url: str, nodes: int = 8) -> str:
    """A fresh, migrated and seeded database for this tree (``nodes`` nodes of 8 GPUs);
    returns the token."""
    env = {**tree_env(code, db_url, cache_url), "BENCH_NODES": str(nodes)}
    dbname = db_url.rsplit("/", 1)[1]
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", dbname], check=True
    )
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", dbname], check=True)
    manage = [PYTHON, str(code / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=code, check=True)
    return subprocess.run(
        [*manage, "shell", "-c", SEED], env=env, cwd=code, check=True,
        capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip


def flush_cache(cache_url: str) -> None:
    if cache_url.startswith("redis"):
        import redis

        redis.Redis.from_url(cache_url).flushdb()


def run_tree(
    code: Path, db_url: str, cache_url: str, token: str, seconds: int, clients: int
) -> dict[str, Result]:
    env = tree_env(code, db_url, cache_url)
    flush_cache(cache_url)
    port = free_port()
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "4", "--log-level", "warning"],
        env=env, cwd=code,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        results = {}
        for url in URLS:
            wrk(base + url, token, 2, clients, server.pid)  # warm up
            results[url] = wrk(base + url, token, seconds, clients, server.pid)
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", action="append", type=Path, default=[])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/karimasu_load")
    parser.add_argument("--cache", default="redis://127.0.0.1:6379/10")
    parser.add_argument(
        "--nodes", type=int, default=8, help="GPU nodes seeded (8 GPUs each); 0 as in issue 12"
    )
    args = parser.parse_args()
    trees = [t.resolve() for t in args.code or [Path(__file__).resolve().parents[1]]]
    names = [t.name for t in trees]
    if len(set(names)) != len(names):
        parser.error("the code trees need distinct folder names")
    databases = [f"{args.database}_{n}" for n in range(len(trees))]
    tokens = [
        prepare_tree(t, d, args.cache, args.nodes) for t, d in zip(trees, databases, strict=True)
    ]
    for round_ in range(1, args.rounds + 1):
        first: dict[str, Result] = {}
        for n, tree in enumerate(trees):
            results = run_tree(
                tree, databases[n], args.cache, tokens[n], args.seconds, args.clients
            )
            first = first or results
            healthz = results["/healthz"].rate
            for url, r in results.items():
                line = (
                    f"round {round_} {tree.name} {url}: {r.rate:.0f} req/s, p99 {r.p99:.1f} ms, "
                    f"{r.cpu_ms:.2f} ms CPU/req, {r.rate / healthz:.3f}x healthz"
                )
                if r.timeouts:
                    line += f", {r.timeouts} timeouts"
                if n > 0:
                    line += (
                        f", {r.rate / first[url].rate:.2f}x {names[0]} req/s"
                        f", {first[url].cpu_ms / r.cpu_ms:.2f}x less CPU/req"
                    )
                print(line, flush=True)


if __name__ == "__main__":
    main()
