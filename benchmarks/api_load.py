"""Load test of the API's hot path: gunicorn on PostgreSQL, driven by wrk over loopback.

    .venv/bin/python benchmarks/api_load.py [--code DIR ...] [--seconds 10] [--clients 50]

For each code tree given (default: this checkout; pass an exported older commit too to
compare), it migrates a fresh PostgreSQL database, creates a user with a token in a team,
starts `gunicorn portal.wsgi --workers 2 --threads 4` on 127.0.0.1 (DEBUG off, the given
CACHE_URL), and runs `wrk -t2 -c<clients> -d<seconds>s --latency` against /healthz,
/api/v1/me/, /api/v1/jobs/ and /api/v1/nodes/ with the Bearer token. Prints requests/s,
p99 and the ratio to /healthz of the same run. Needs `wrk` (Debian: apt-get install wrk).
The throttle rates are raised so that the load generator is not throttled.
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

URLS = ["/healthz", "/api/v1/me/", "/api/v1/jobs/", "/api/v1/nodes/"]
PYTHON = sys.executable
MAKE_TOKEN = """
from django.utils import timezone
from portal.accounts.models import Membership, Team, User
from portal.accounts import services
user = User.objects.create_user("bench")
team = Team.objects.create(slug="bench", name="Bench")
Membership.objects.create(team=team, user=user, role="lead")
print(services.create_api_token(user, name="bench", now=timezone.now())[1])
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wrk(url: str, token: str, seconds: int, clients: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "-H",
         f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert non2xx is None, f"{url}: {non2xx.group(0)}"
    return rate, float(p99.group(1)) * scale


def run_tree(code: Path, db_url: str, cache_url: str, seconds: int, clients: int) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CACHE_URL": cache_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-not-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "API_THROTTLE_USER": "100000000/min",
        "API_THROTTLE_ANON": "100000000/min",
        "KARIMASU_VAR_DIR": f"/tmp/karimasu-bench-var-{os.getpid()}",
        "PYTHONPATH": str(code),
    }
    dbname = db_url.rsplit("/", 1)[1]
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", dbname], check=True
    )
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", dbname], check=True)
    manage = [PYTHON, str(code / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=code, check=True)
    token = subprocess.run(
        [*manage, "shell", "-c", MAKE_TOKEN], env=env, cwd=code, check=True,
        capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
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
            wrk(base + url, token, 2, clients)  # warm up
            results[url] = wrk(base + url, token, seconds, clients)
        healthz = results["/healthz"][0]
        for url, (rate, p99) in results.items():
            print(
                f"{code.name} {url}: {rate:.0f} req/s, p99 {p99:.1f} ms, "
                f"{rate / healthz:.3f}x healthz"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", action="append", type=Path, default=[])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/karimasu_load")
    parser.add_argument("--cache", default="")
    args = parser.parse_args()
    trees = args.code or [Path(__file__).resolve().parents[1]]
    for tree in trees:
        cache = args.cache or f"filecache:///tmp/karimasu-bench-cache-{os.getpid()}-{tree.name}"
        run_tree(tree.resolve(), args.database, cache, args.seconds, args.clients)


if __name__ == "__main__":
    main()
