"""A real Celery worker (prefork, as deployed) runs queries through the DuckDB sandbox: a
small query succeeds, a memory bomb is stopped within its budget, and the worker's own
processes stay small (their peak resident memory, VmHWM, is read from /proc)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from querygate import tasks
from querygate.models import Query, QueryStatus, Warehouse
from querygate.services.catalog import refresh_catalog
from tests.portal.test_celery_worker import celery_worker
from tests.querygate.test_kill import queued

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
    results = tmp_path / "results"
    settings.QUERYGATE_RESULTS_DIR = results
    with celery_worker(pool="prefork", env={"QUERYGATE_RESULTS_DIR": str(results)}) as worker:
        yield worker


def test_a_prefork_worker_runs_queries_in_the_sandbox_and_stays_small(
    prefork_worker, tpch_path, duckdb_engine, bob
) -> None:
    queue, proc = prefork_worker
    warehouse = Warehouse.objects.create(
        name="demo", engine="duckdb", connection=tpch_path, open_to_all=True
    )
    refresh_catalog(warehouse.pk, now=timezone.now(), engine=duckdb_engine)
    small = queued(bob.user, warehouse, "SELECT n_name FROM nation ORDER BY n_name", budget_s=3)
    tasks.run_query.apply_async(args=[small.pk], queue=queue)
    deadline = time.monotonic() + 90  # the worker's own start-up included
    while Query.objects.get(pk=small.pk).status in ("queued", "running"):
        assert time.monotonic() < deadline, "the worker never ran the query"
        time.sleep(0.2)
    small.refresh_from_db()
    assert small.status == QueryStatus.SUCCEEDED, small.error
    assert small.row_count == 25
    before = {pid: _peak_kb(pid) for pid in _worker_processes(proc.pid)}

    bomb = queued(bob.user, warehouse, "SELECT len(range(300000000)) AS n", budget_s=3)
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
