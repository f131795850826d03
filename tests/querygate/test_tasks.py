"""Celery tasks: thin, safe to run twice, and the hand-over from an inline run to a worker.
Tasks run eagerly here (``task_always_eager`` set and restored by hand)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from portal.celery import app
from querygate import tasks
from querygate.models import Query, QueryStatus, Warehouse
from querygate.services.execution import execute_query

from .conftest import DUCKDB_HEAVY
from .test_kill import queued


@pytest.fixture
def eager():
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


def test_a_large_query_runs_on_a_worker_and_is_polled(
    demo, bob, eager, django_capture_on_commit_callbacks
) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(policy={"warn_bytes_scanned": 1})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = bob.client().post(
            "/api/v1/queries/",
            {
                "warehouse": "demo",
                "sql": "SELECT count(*) AS n FROM lineitem",
                "acknowledge_warnings": True,
            },
            format="json",
        )
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert len(callbacks) == 1
    polled = bob.client().get(f"/api/v1/queries/{response.json()['id']}/").json()
    assert polled["status"] == "succeeded" and polled["mode"] == "celery"
    assert polled["result"]["rows"] == [[60175]]


def test_an_inline_run_over_its_budget_moves_to_a_worker(
    transactional_db, tpch_path, bob, eager, settings
) -> None:
    settings.QUERYGATE_INLINE_SECONDS = 0.3
    warehouse = Warehouse.objects.create(name="demo", engine="duckdb", connection=tpch_path)
    query = queued(bob.user, warehouse, DUCKDB_HEAVY, budget_s=2)
    started = time.monotonic()
    execute_query(query.pk, inline=True, poll_s=0.05)
    assert time.monotonic() - started < 15
    query.refresh_from_db()
    # Stopped inline at 0.3 s, handed to a worker (eager here) that ran it with its full
    # 2 s budget, where the engine-side guard stopped it.
    assert query.mode == "celery"
    assert query.status == QueryStatus.KILLED
    assert "runtime budget" in query.kill_reason
    assert query.duration_s is not None and query.duration_s >= 1.5


def test_refresh_catalogs_survives_a_broken_warehouse(demo, tmp_path) -> None:
    broken = Warehouse.objects.create(
        name="broken", engine="duckdb", connection=str(tmp_path / "missing.duckdb")
    )
    versions = tasks.refresh_catalogs()
    assert versions == {"demo": demo.catalog_version + 1}
    broken.refresh_from_db()
    assert "cannot open" in broken.catalog_error


def test_enforce_budgets_task_with_nothing_running(db) -> None:
    assert tasks.enforce_budgets() == {"killed": 0, "terminated": 0, "lost": 0}


def test_run_query_skips_what_is_not_queued(demo, bob) -> None:
    query = queued(bob.user, demo, "SELECT 1")
    Query.objects.filter(pk=query.pk).update(
        status=QueryStatus.CANCELLED, finished_at=timezone.now()
    )
    assert tasks.run_query(query.pk) == QueryStatus.CANCELLED
