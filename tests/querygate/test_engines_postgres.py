"""The PostgreSQL engine on a real database (created for the session, dropped after), read
through a role that may only SELECT: catalog with keys and partitioning, the kill, the
statement_timeout guard, terminate, and the walls that hold around the analysis."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from querygate.engines.postgres import PostgresEngine
from querygate.errors import EngineError, QueryInterrupted

from .conftest import PG_HEAVY, backend_state


def test_catalog_reads_keys_partitioning_rows_and_distincts(pg_engine) -> None:
    tables = {t.name: t for t in pg_engine.catalog()}
    # Partitions are not tables of their own: queries name the parent.
    assert set(tables) == {"customers", "events"}
    customers, events = tables["customers"], tables["events"]
    assert customers.schema == "public"
    assert customers.primary_key == ("id",)
    assert customers.unique_keys == (("email",),)
    assert customers.rows == 2000
    assert customers.column("country").distinct == 3
    assert customers.column("email").distinct == 2000
    assert customers.bytes and customers.bytes > 0
    assert events.partition_columns == ("day",)
    assert events.rows == 20000  # summed over the partitions
    assert events.column("day").type == "date"
    assert events.column("kind").distinct == 1


def test_execute_returns_capped_rows(pg_engine) -> None:
    with pg_engine.session(timeout_s=10) as session:
        result = session.execute("SELECT id FROM customers ORDER BY id", max_rows=3)
    assert result.columns == ["id"]
    assert result.rows == [(1,), (2,), (3,)] and result.truncated


def _run_in_thread(session, sql: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = session.execute(sql, max_rows=10)
        except Exception as error:
            outcome["error"] = error
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _wait_active(pid: int) -> None:
    for _ in range(100):
        if backend_state(pid) == "active":
            return
        time.sleep(0.05)
    raise AssertionError(f"backend {pid} never became active")


@pytest.mark.parametrize("sql", ["SELECT pg_sleep(60)", PG_HEAVY], ids=["sleep", "cross-join"])
def test_cancel_from_another_connection_stops_it_on_the_engine(pg_engine, sql: str) -> None:
    with pg_engine.session(timeout_s=120) as session:
        pid = session.handle["pid"]
        thread, outcome = _run_in_thread(session, sql)
        _wait_active(pid)
        asked = time.monotonic()
        assert pg_engine.cancel(session.handle) is True
        # Gone from pg_stat_activity's active backends within 1 s of the kill request.
        while backend_state(pid) == "active":
            assert time.monotonic() - asked < 1.0, "still active 1 s after pg_cancel_backend"
            time.sleep(0.02)
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert isinstance(outcome["error"], QueryInterrupted)
        assert outcome["ended"] - asked < 10


def test_statement_timeout_is_the_engine_side_guard(pg_engine) -> None:
    started = time.monotonic()
    with (
        pg_engine.session(timeout_s=0.5) as session,
        pytest.raises(QueryInterrupted, match="statement timeout"),
    ):
        session.execute("SELECT pg_sleep(30)", max_rows=1)
    assert time.monotonic() - started < 10


def test_terminate_ends_the_backend(pg_engine) -> None:
    with pg_engine.session(timeout_s=120) as session:
        pid = session.handle["pid"]
        thread, outcome = _run_in_thread(session, "SELECT pg_sleep(60)")
        _wait_active(pid)
        assert pg_engine.cancel(session.handle, terminate=True) is True
        thread.join(timeout=10)
        assert isinstance(outcome["error"], QueryInterrupted)
        deadline = time.monotonic() + 5
        while backend_state(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backend_state(pid) is None


def test_cancel_never_signals_a_reused_pid(pg_engine) -> None:
    with pg_engine.session(timeout_s=10) as session:
        stale = {**session.handle, "backend_start": "2000-01-01 00:00:00+00"}
        assert pg_engine.cancel(stale) is False


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO customers VALUES (99999, 'x@example.com', 'jp')",
        "DELETE FROM customers",
        "CREATE TABLE stolen AS SELECT * FROM customers",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('.')",
        "COPY customers TO PROGRAM 'cat > /tmp/karimasu-leak'",
        "SELECT lo_import('/etc/passwd')",
        "SELECT pg_terminate_backend({owner_pid})",
    ],
    ids=[
        "insert",
        "delete",
        "create",
        "set-config-then-write",
        "pg_read_file",
        "pg_ls_dir",
        "copy-program",
        "lo_import",
        "terminate",
    ],
)
def test_writes_and_escape_hatches_fail_at_the_engine(pg_engine, pg_warehouse, sql: str) -> None:
    """Sent straight to the engine, around the analysis."""
    with (
        psycopg.connect(pg_warehouse["admin_dsn"]) as owner,
        pg_engine.session(timeout_s=10) as session,
    ):
        sql = sql.format(owner_pid=owner.info.backend_pid)
        if sql.startswith("SELECT set_config"):
            session.execute(sql, max_rows=1)  # allowed to run: it cannot lift READ ONLY
            sql = "INSERT INTO customers VALUES (99999, 'x@example.com', 'jp')"
        with pytest.raises(EngineError):
            session.execute(sql, max_rows=1)


def test_sessions_are_read_only_and_time_limited(pg_engine) -> None:
    with pg_engine.session(timeout_s=7) as session:
        result = session.execute(
            "SELECT current_setting('default_transaction_read_only'), "
            "current_setting('transaction_read_only'), current_setting('statement_timeout')",
            max_rows=1,
        )
    assert result.rows == [("on", "on", "7s")]


def test_explain_gives_rows_and_cost(pg_engine) -> None:
    plan = pg_engine.explain("SELECT * FROM events WHERE day = DATE '2026-01-05'")
    assert plan["rows"] > 0 and plan["cost"] > 0


def test_an_unreachable_server_is_an_engine_error() -> None:
    engine = PostgresEngine("postgres://nobody@127.0.0.1:1/none")
    with pytest.raises(EngineError, match="cannot connect"):
        engine.catalog()


def test_a_sort_that_spills_is_measured(pg_warehouse) -> None:
    """The spill of a statement is sampled while it runs (the role needs pg_monitor)."""
    import psycopg

    from querygate.engines.sandbox import MIB, Limits

    with psycopg.connect(pg_warehouse["admin_dsn"], autocommit=True) as owner:
        role = psycopg.conninfo.conninfo_to_dict(pg_warehouse["dsn"])["user"]
        owner.execute(f'GRANT pg_monitor TO "{role}"')
    # work_mem = memory / 8: 64 kB makes any real sort spill to disk.
    engine = PostgresEngine(pg_warehouse["dsn"], Limits(memory_bytes=512 * 1024))
    sql = "SELECT g FROM generate_series(1, 3000000) g ORDER BY md5(g::text) LIMIT 1"
    with engine.session(timeout_s=60) as session:
        session.execute(sql, max_rows=1)
    assert session.temp_bytes > 10 * MIB
