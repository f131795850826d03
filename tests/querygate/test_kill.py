"""The kill, end to end through the services: a running query is stopped on the engine by
its owner's cancel, by the executor's own deadline, and by the watchdog (driven with a
controlled ``now``), on DuckDB and on PostgreSQL. Executors run in a thread, as a Celery
worker would, so these tests commit (``transactional_db``)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from querygate import tasks
from querygate.engines.postgres import PostgresEngine
from querygate.models import Query, QueryStatus, Warehouse
from querygate.services.enforcement import cancel_query, enforce_budgets
from querygate.services.execution import execute_query, wait_for

from .conftest import DUCKDB_HEAVY, backend_state


def queued(user, warehouse: Warehouse, sql: str, *, budget_s: float = 60) -> Query:
    """An audit row as ``submit_query`` writes it for an allowed query (the heavy SQL here
    would not pass the analysis: these tests are about the kill, not the gate)."""
    return Query.objects.create(
        user=user,
        warehouse=warehouse,
        sql=sql,
        fingerprint="test",
        statement_type="select",
        decision="allow",
        status=QueryStatus.QUEUED,
        runtime_budget_s=budget_s,
        created_at=timezone.now(),
    )


def in_worker(query_id: int, **kwargs) -> threading.Thread:
    def run() -> None:
        try:
            execute_query(query_id, poll_s=0.05, **kwargs)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_running(query_id: int) -> Query:
    for _ in range(200):
        query = Query.objects.get(pk=query_id)
        if query.status == QueryStatus.RUNNING and query.engine_handle:
            return query
        time.sleep(0.05)
    raise AssertionError(f"query {query_id} never started")


@pytest.fixture
def demo_wh(transactional_db, tpch_path) -> Warehouse:
    return Warehouse.objects.create(
        name="demo", engine="duckdb", connection=tpch_path, open_to_all=True
    )


@pytest.fixture
def pg_wh(transactional_db, pg_warehouse) -> Warehouse:
    return Warehouse.objects.create(
        name="pg", engine="postgres", connection=pg_warehouse["dsn"], open_to_all=True
    )


def test_owner_cancels_a_running_duckdb_query(demo_wh, bob) -> None:
    query = queued(bob.user, demo_wh, DUCKDB_HEAVY)
    worker = in_worker(query.pk)
    wait_running(query.pk)
    asked = time.monotonic()
    cancel_query(bob.user, query.pk, now=timezone.now())
    worker.join(timeout=10)
    assert not worker.is_alive() and time.monotonic() - asked < 10
    query.refresh_from_db()
    assert query.status == QueryStatus.CANCELLED
    assert query.killed_by == bob.user and query.kill_reason == "cancelled by its owner"
    assert "INTERRUPT" in query.error["message"].upper()


def test_the_executor_stops_a_duckdb_query_at_its_deadline(demo_wh, bob) -> None:
    query = queued(bob.user, demo_wh, DUCKDB_HEAVY, budget_s=1)
    started = time.monotonic()
    execute_query(query.pk, poll_s=0.05)
    assert time.monotonic() - started < 10
    query.refresh_from_db()
    assert query.status == QueryStatus.KILLED
    assert "runtime budget" in query.kill_reason


def test_admin_kills_a_running_postgres_query_at_once(pg_wh, bob, admin) -> None:
    query = queued(bob.user, pg_wh, "SELECT pg_sleep(60)")
    worker = in_worker(query.pk)
    pid = wait_running(query.pk).engine_handle["pid"]
    assert backend_state(pid) == "active"
    asked = time.monotonic()
    cancel_query(admin.user, query.pk, now=timezone.now(), reason="hogging the warehouse")
    while backend_state(pid) == "active":
        assert time.monotonic() - asked < 1.0, "still active 1 s after the kill request"
        time.sleep(0.02)
    worker.join(timeout=10)
    query.refresh_from_db()
    assert query.status == QueryStatus.KILLED and query.killed_by == admin.user
    assert query.kill_reason == "hogging the warehouse"


def test_the_watchdog_kills_an_over_budget_postgres_query(pg_wh, bob) -> None:
    # The executor's own watcher polls only every 30 s here: the watchdog must do the kill.
    query = queued(bob.user, pg_wh, "SELECT pg_sleep(60)", budget_s=30)
    worker = in_worker_slow_poll(query.pk)
    running = wait_running(query.pk)
    pid = running.engine_handle["pid"]
    assert enforce_budgets(now=running.deadline - timedelta(seconds=1))["killed"] == 0
    assert backend_state(pid) == "active"
    asked = time.monotonic()
    assert enforce_budgets(now=running.deadline + timedelta(seconds=1))["killed"] == 1
    while backend_state(pid) == "active":
        assert time.monotonic() - asked < 1.0
        time.sleep(0.02)
    worker.join(timeout=10)
    query.refresh_from_db()
    assert query.status == QueryStatus.KILLED and query.killed_by is None
    assert query.kill_reason == "runtime budget exceeded (watchdog)"
    # Run twice: nothing left to kill.
    assert enforce_budgets(now=running.deadline + timedelta(seconds=2))["killed"] == 0


def in_worker_slow_poll(query_id: int) -> threading.Thread:
    def run() -> None:
        try:
            execute_query(query_id, poll_s=30)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_the_watchdog_terminates_after_the_grace_and_marks_lost_executors(
    pg_wh, pg_warehouse, bob, settings
) -> None:
    settings.QUERYGATE_KILL_GRACE_SECONDS = 10
    engine = PostgresEngine(pg_warehouse["dsn"])
    with engine.session(timeout_s=120) as session:
        # A backend still running although its cancel was requested long ago (a lost
        # executor): the row points at it.
        now = timezone.now()
        query = queued(bob.user, pg_wh, "SELECT pg_sleep(60)")
        Query.objects.filter(pk=query.pk).update(
            status=QueryStatus.RUNNING,
            started_at=now,
            deadline=now,
            cancel_requested_at=now,
            engine_handle=session.handle,
        )
        outcome: dict = {}
        thread = threading.Thread(
            target=lambda: outcome.setdefault("error", _raises(session, "SELECT pg_sleep(60)"))
        )
        thread.start()
        while backend_state(session.handle["pid"]) != "active":
            time.sleep(0.02)
        counts = enforce_budgets(now=now + timedelta(seconds=11))
        assert counts == {"killed": 0, "terminated": 1, "lost": 0}
        thread.join(timeout=10)
        assert outcome["error"] is not None
        counts = enforce_budgets(now=now + timedelta(seconds=31))
        assert counts["lost"] == 1
    assert Query.objects.get(pk=query.pk).status == QueryStatus.KILLED


def _raises(session, sql: str) -> Exception | None:
    try:
        session.execute(sql, max_rows=1)
    except Exception as error:
        return error
    return None


def test_run_query_task_is_safe_to_run_twice(demo_wh, bob) -> None:
    query = queued(bob.user, demo_wh, "SELECT r_name FROM region")
    assert tasks.run_query(query.pk) == QueryStatus.SUCCEEDED
    finished = Query.objects.get(pk=query.pk).finished_at
    assert tasks.run_query(query.pk) == QueryStatus.SUCCEEDED
    assert Query.objects.get(pk=query.pk).finished_at == finished


def test_a_queued_query_is_cancelled_before_it_runs(demo_wh, bob) -> None:
    query = queued(bob.user, demo_wh, "SELECT r_name FROM region")
    cancel_query(bob.user, query.pk, now=timezone.now())
    assert execute_query(query.pk).status == QueryStatus.CANCELLED  # the worker skips it
    assert wait_for(query.pk, timeout_s=1).result is None
