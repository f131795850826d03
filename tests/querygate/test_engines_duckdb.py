"""The DuckDB engine on a real sf=0.01 TPC-H file: catalog, capped execution, the kill, the
timeout guard and the lock-down that holds even when the analysis is bypassed."""

from __future__ import annotations

import threading
import time

import pytest

from querygate.engines.duckdb import DuckDBEngine
from querygate.errors import EngineError, QueryInterrupted

from .conftest import DUCKDB_HEAVY


def test_catalog_reads_tables_rows_distincts_and_widths(duckdb_engine) -> None:
    tables = {t.name: t for t in duckdb_engine.catalog()}
    assert {
        "lineitem",
        "orders",
        "customer",
        "nation",
        "region",
        "part",
        "partsupp",
        "supplier",
    } <= set(tables)
    orders = tables["orders"]
    assert orders.schema == "main"
    assert orders.rows == 15000
    key = orders.column("o_orderkey")
    assert key is not None and key.type == "BIGINT" and key.avg_width == 8
    # approx_count_distinct: the key is (close to) unique, the priority has 5 values.
    assert key.distinct == pytest.approx(15000, rel=0.05)
    assert orders.column("o_orderpriority").distinct == 5
    comment = orders.column("o_comment")
    assert 10 < comment.avg_width < 80  # measured average length, not a guess
    assert orders.bytes == sum(c.avg_width for c in orders.columns) * 15000


def test_execute_caps_rows_and_says_truncated(tpch_path) -> None:
    engine = DuckDBEngine(tpch_path)
    with engine.session(timeout_s=10) as session:
        result = session.execute("SELECT n_name FROM nation ORDER BY n_name", max_rows=10)
    assert result.columns == ["n_name"]
    assert len(result.rows) == 10 and result.truncated
    with engine.session(timeout_s=10) as session:
        result = session.execute("SELECT r_name FROM region", max_rows=10)
    assert len(result.rows) == 5 and not result.truncated


def test_interrupt_stops_a_running_query(tpch_path) -> None:
    engine = DuckDBEngine(tpch_path)
    with engine.session(timeout_s=60) as session:
        timer = threading.Timer(0.5, session.interrupt)
        timer.start()
        started = time.monotonic()
        with pytest.raises(QueryInterrupted, match="interrupted"):
            session.execute(DUCKDB_HEAVY, max_rows=10)
        assert time.monotonic() - started < 10


def test_timeout_guard_interrupts_at_the_deadline(tpch_path) -> None:
    engine = DuckDBEngine(tpch_path)
    started = time.monotonic()
    with engine.session(timeout_s=0.5) as session, pytest.raises(QueryInterrupted, match="timeout"):
        session.execute(DUCKDB_HEAVY, max_rows=10)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "COPY lineitem TO '/tmp/karimasu-leak.csv'",
        "ATTACH '/tmp/karimasu-other.duckdb' AS other",
        "LOAD 'httpfs'",
        "SET enable_external_access = true",
        "SET threads = 1",
        "CREATE TABLE stolen AS SELECT * FROM customer",
        "INSERT INTO region VALUES (9, 'X', 'y')",
        "DELETE FROM region",
    ],
    ids=[
        "read_csv",
        "file-path-table",
        "copy",
        "attach",
        "load",
        "set-access",
        "set-threads",
        "create",
        "insert",
        "delete",
    ],
)
def test_escape_hatches_and_writes_fail_at_the_engine(tpch_path, sql: str) -> None:
    """Sent straight to the engine, around the analysis: the connection itself refuses."""
    with DuckDBEngine(tpch_path).session(timeout_s=10) as session, pytest.raises(EngineError):
        session.execute(sql, max_rows=10)


def test_explain_gives_the_engines_cardinality(tpch_path) -> None:
    plan = DuckDBEngine(tpch_path).explain("SELECT * FROM orders WHERE o_orderkey < 100")
    assert isinstance(plan["rows"], int) and plan["rows"] > 0


def test_a_missing_file_is_an_engine_error(tmp_path) -> None:
    with pytest.raises(EngineError, match="cannot open"):
        DuckDBEngine(str(tmp_path / "nope.duckdb")).catalog()


def test_timestamp_with_time_zone_columns_come_back(tpch_path) -> None:
    """DuckDB hands TIMESTAMPTZ to Python through pytz (a dependency for this reason)."""
    from datetime import UTC, datetime

    engine = DuckDBEngine(tpch_path)
    with engine.session(timeout_s=10) as session:
        result = session.execute("SELECT TIMESTAMPTZ '2026-01-01 10:00:00+00' AS t", max_rows=10)
    [[value]] = result.rows
    assert value == datetime(2026, 1, 1, 10, tzinfo=UTC)
