"""A real Celery worker (prefork, as deployed) runs queries through the DuckDB sandbox: a
small query succeeds, a memory bomb is stopped within its budget, and the worker's own
processes stay small (their peak resident memory, VmHWM, is read from /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from querygate import tasks
from querygate.models import Query, QueryStatus, Warehouse
from querygate.services.warehouses import refresh_catalog
from tests.portal.test_celery_worker import _test_database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _worker_processes(root: int) -> list[int]:
    """The worker's main process and its pool children (not the sandbox's zygote or its
    children, which are ours to bound separately)."""
    found = [root]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == root and b"querygate.engines.sandbox" not in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def prefork_worker(tmp_path, settings):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    results = tmp_path / "results"
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        "QUERYGATE_RESULTS_DIR": str(results),
    }
    settings.QUERYGATE_RESULTS_DIR = results
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--queues",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{queue}@%h",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue, proc
    finally:
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        print(output)


def _queued(user, warehouse, sql: str) -> Query:
    return Query.objects.create(
        user=user,
        warehouse=warehouse,
        sql=sql,
        fingerprint="test",
        statement_type="select",
        decision="allow",
        status=QueryStatus.QUEUED,
        runtime_budget_s=3,
        created_at=timezone.now(),
    )


def test_a_prefork_worker_runs_queries_in_the_sandbox_and_stays_small(
    prefork_worker, tpch_path, duckdb_engine, bob
) -> None:
    queue, proc = prefork_worker
    warehouse = Warehouse.objects.create(
        name="demo", engine="duckdb", connection=tpch_path, open_to_all=True
    )
    refresh_catalog(warehouse.pk, now=timezone.now(), engine=duckdb_engine)
    small = _queued(bob.user, warehouse, "SELECT n_name FROM nation ORDER BY n_name")
    tasks.run_query.apply_async(args=[small.pk], queue=queue)
    deadline = time.monotonic() + 90  # the worker's own start-up included
    while Query.objects.get(pk=small.pk).status in ("queued", "running"):
        assert time.monotonic() < deadline, "the worker never ran the query"
        time.sleep(0.2)
    small.refresh_from_db()
    assert small.status == QueryStatus.SUCCEEDED, small.error
    assert small.row_count == 25
    before = {pid: _peak_kb(pid) for pid in _worker_processes(proc.pid)}

    bomb = _queued(bob.user, warehouse, "SELECT len(range(300000000)) AS n")
    started = time.monotonic()
    tasks.run_query.apply_async(args=[bomb.pk], queue=queue)
    while Query.objects.get(pk=bomb.pk).status in ("queued", "running"):
        assert time.monotonic() - started < 3 + 2 + 5, "the bomb was not stopped"
        time.sleep(0.1)
    bomb.refresh_from_db()
    assert bomb.status in (QueryStatus.KILLED, QueryStatus.FAILED), bomb.status
    after = {pid: _peak_kb(pid) for pid in before if Path(f"/proc/{pid}").exists()}
    assert after, "the worker's processes are gone"
    for pid, peak in after.items():
        assert peak - before[pid] < 200 * 1024, f"worker process {pid} grew to {peak} kB"
    assert (Path(settings.QUERYGATE_RESULTS_DIR) / small.result_file).is_file()
