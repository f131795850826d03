"""The gate under hostile input, on both engines (DuckDB ``demo``; PostgreSQL real).

Each bomb or escape attempt goes through ``/analyze`` and ``/queries/`` as a member would
send it. Whatever the gate decides, it must hold: rejected before the engine, or stopped
within its runtime budget + 2 s; the calling process (web or worker: the inline path runs
here, and a query handed to a worker is run here with ``execute_query``) grows by less than
200 MB; and every request leaves an audit row (``Query`` for a submission, ``AnalyzeAudit``
for an analysis).
"""

from __future__ import annotations

import resource
import time

import psycopg
import pytest
from django.utils import timezone

from querygate.engines.duckdb import DuckDBEngine
from querygate.engines.postgres import PostgresEngine
from querygate.errors import EngineError
from querygate.models import ACTIVE_STATUSES, AnalyzeAudit, Query, QueryStatus, Warehouse
from querygate.services.catalog import refresh_catalog
from querygate.services.execution import execute_query

BUDGET_S = 2
SLACK_S = 2.0
MEMORY_LIMIT_KB = 200 * 1024

DUCKDB_BOMBS = {
    # list and string builders (DuckDB does not honour interrupt() while building them)
    "len-range": "SELECT len(range(100000000)) AS n",
    "repeat-string": "SELECT length(repeat('x', 2000000000)) AS n",
    "lpad": "SELECT lpad('a', 2000000000, 'b') AS s",
    "rpad": "SELECT rpad('a', 2000000000, 'b') AS s",
    "repeat-list": "SELECT len(repeat([1, 2, 3], 200000000)) AS n",
    "unnest-range": "SELECT unnest(range(100000000)) AS x",
    "range-of-column": "SELECT len(range(l_orderkey * 100000)) FROM lineitem",
    "repeat-of-column": "SELECT repeat(l_comment, 1000000) FROM lineitem",
    "printf-width": "SELECT printf('%1000000000d', 1) AS s",
    "string-agg-generator": "SELECT string_agg(x::VARCHAR, ',') FROM range(100000000) t(x)",
    "list-agg-generator": "SELECT list(x) FROM range(100000000) t(x)",
    # generators as tables
    "range-table": "SELECT count(*) FROM range(10000000000)",
    "generate-series-table": "SELECT sum(x) FROM generate_series(1, 1000000000000) t(x)",
    "range-rows": "SELECT * FROM range(100000000000)",
    "generator-cross-join": "SELECT count(*) FROM range(100000) a, range(100000) b, range(1000) c",
    # estimates wrapped to look small
    "cte-cartesian": (
        "WITH a AS (SELECT * FROM lineitem), b AS (SELECT * FROM lineitem) "
        "SELECT count(*) FROM a, b"
    ),
    "correlated-cartesian": (
        "SELECT (SELECT count(*) FROM lineitem l2, lineitem l3 "
        "WHERE l2.l_orderkey = l1.l_orderkey) AS n FROM lineitem l1"
    ),
    "derived-cartesian": (
        "SELECT count(*) FROM (SELECT * FROM lineitem, orders) x, (SELECT * FROM partsupp) y"
    ),
    "recursive-forever": (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    ),
    # escape hatches
    "read-csv": "SELECT * FROM read_csv('/etc/passwd')",
    "file-as-table": "SELECT * FROM '/etc/passwd'",
    "glob": "SELECT * FROM glob('/etc/*')",
    "copy-to": "COPY (SELECT 1) TO '/tmp/karimasu-pwn.csv'",
    "attach": "ATTACH '/tmp/karimasu-pwn.duckdb' AS pwn",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set-external-access": "SET enable_external_access = true",
    "pragma": "PRAGMA database_list",
    "export-database": "EXPORT DATABASE '/tmp/karimasu-pwn'",
    "create-table": "CREATE TABLE pwn AS SELECT 1 AS x",
    "getenv": "SELECT getenv('HOME') AS h",
    "settings": "SELECT * FROM duckdb_settings()",
    "two-statements": "SELECT 1; SELECT 2",
    "comment-hidden-statement": "SELECT 1 /* ; */; CREATE TABLE pwn(x INT)",
}

PG_BOMBS = {
    "repeat": "SELECT length(repeat('x', 1000000000)) AS n",
    "lpad": "SELECT length(lpad('x', 1000000000, 'y')) AS n",
    "array-fill": "SELECT cardinality(array_fill(1, ARRAY[1000000000])) AS n",
    "cross-join": (
        "SELECT count(*) FROM generate_series(1, 100000000) a, generate_series(1, 100000) b"
    ),
    "many-rows": "SELECT g FROM generate_series(1, 20000000) g LIMIT 20000000",
    "string-agg": "SELECT length(string_agg(g::text, ',')) FROM generate_series(1, 50000000) g",
    "spill-sort": "SELECT g FROM generate_series(1, 50000000) g ORDER BY md5(g::text) LIMIT 5",
    "sleep": "SELECT pg_sleep(100)",
    "recursive-forever": (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    ),
    "read-file": "SELECT pg_read_file('/etc/passwd')",
    "lo-import": "SELECT lo_import('/etc/passwd')",
    "copy-to": "COPY customers TO '/tmp/karimasu-pwn'",
    "set-timeout": "SET statement_timeout = 0",
    "set-config": "SELECT set_config('statement_timeout', '0', false)",
    "commit-smuggle": (
        "SELECT 1; COMMIT; BEGIN READ WRITE; CREATE TABLE pwn(x int); COMMIT; SELECT 1"
    ),
    "quote-smuggle": "SELECT 'a\\'; CREATE TABLE pwn(x int); --' AS s",
    "dblink": "SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)",
    "terminate": "SELECT pg_terminate_backend(pg_backend_pid())",
    "cartesian-cte": (
        "WITH a AS (SELECT * FROM customers), b AS (SELECT * FROM events) "
        "SELECT count(*) FROM a, b, events e2"
    ),
}


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.fixture
def hostile_settings(settings):
    settings.QUERYGATE_INLINE_SECONDS = BUDGET_S
    settings.QUERYGATE_EXPLAIN_SECONDS = 1.0
    return settings


@pytest.fixture
def pg(db, pg_warehouse) -> Warehouse:
    warehouse = Warehouse.objects.create(
        name="pg",
        engine="postgres",
        connection=pg_warehouse["dsn"],
        open_to_all=True,
        max_runtime_s=BUDGET_S,
    )
    refresh_catalog(warehouse.pk, now=timezone.now())
    warehouse.refresh_from_db()
    return warehouse


def _attack(persona, warehouse: Warehouse, sql: str) -> None:
    """Analyze, then submit (acknowledging warnings) ``sql`` as ``persona``; run what was
    handed to a worker; check the time, memory and audit promises."""
    client = persona.client()
    baseline = _peak_kb()
    analyses = AnalyzeAudit.objects.filter(user=persona.user).count()
    started = time.monotonic()
    response = client.post(
        "/api/v1/queries/analyze/", {"warehouse": warehouse.name, "sql": sql}, format="json"
    )
    assert response.status_code < 500, response.content
    # The EXPLAIN has its own deadline (1 s here), plus the kill grace.
    assert time.monotonic() - started < 1.0 + SLACK_S
    assert AnalyzeAudit.objects.filter(user=persona.user).count() == analyses + 1

    queries = Query.objects.filter(user=persona.user).count()
    started = time.monotonic()
    response = client.post(
        "/api/v1/queries/",
        {"warehouse": warehouse.name, "sql": sql, "acknowledge_warnings": True},
        format="json",
    )
    assert response.status_code < 500, response.content
    assert Query.objects.filter(user=persona.user).count() == queries + 1, "no audit row"
    query = Query.objects.filter(user=persona.user).latest("id")
    if query.status == QueryStatus.QUEUED:  # handed to a worker: run it as the worker would
        started = time.monotonic()
        query = execute_query(query.pk)
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_S + SLACK_S, f"{query.status} after {elapsed:.1f} s"
    assert query.status not in ACTIVE_STATUSES
    growth = _peak_kb() - baseline
    assert growth < MEMORY_LIMIT_KB, f"the process grew by {growth // 1024} MB"


@pytest.mark.parametrize("sql", list(DUCKDB_BOMBS.values()), ids=list(DUCKDB_BOMBS))
def test_duckdb_bombs_and_escapes_are_refused_or_stopped(
    demo, bob, hostile_settings, sql: str
) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(max_runtime_s=BUDGET_S, result_cache_s=0)
    demo.refresh_from_db()
    _attack(bob, demo, sql)


@pytest.mark.parametrize("sql", list(PG_BOMBS.values()), ids=list(PG_BOMBS))
def test_postgres_bombs_and_escapes_are_refused_or_stopped(
    pg, pg_warehouse, bob, hostile_settings, sql: str
) -> None:
    _attack(bob, pg, sql)
    with psycopg.connect(pg_warehouse["admin_dsn"], autocommit=True) as owner:
        created = owner.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'pwn'")
        assert created.fetchone() == (0,), "a statement the gate never judged wrote"


# ----------------------------------------------------- one statement, whatever the dialect

SMUGGLERS = [
    "SELECT 1; CREATE TABLE pwn(x int)",
    "SELECT 1 AS a; COMMIT; BEGIN READ WRITE; CREATE TABLE pwn(x int); COMMIT",
    "SELECT 'x'; CREATE TABLE pwn(x int)",
]


@pytest.mark.parametrize("sql", SMUGGLERS)
def test_the_postgres_engine_runs_and_explains_only_one_statement(pg_warehouse, sql) -> None:
    engine = PostgresEngine(pg_warehouse["admin_dsn"])  # the owner: a write would succeed
    with engine.session(timeout_s=10) as session, pytest.raises(EngineError, match="one"):
        session.execute(sql, max_rows=10)
    with pytest.raises(EngineError):
        engine.explain(sql)
    with psycopg.connect(pg_warehouse["admin_dsn"], autocommit=True) as owner:
        assert owner.execute("SELECT to_regclass('pwn')").fetchone() == (None,)


def test_the_duckdb_engine_runs_and_explains_only_one_statement(tmp_path) -> None:
    import duckdb

    path = str(tmp_path / "w.duckdb")
    duckdb.connect(path).close()
    engine = DuckDBEngine(path)
    for sql in ["SELECT 1; CREATE TABLE pwn(x INT)", "SELECT 1 /* ; */; CREATE TABLE pwn(x INT)"]:
        with (
            engine.session(timeout_s=10, allow_writes=True) as session,
            pytest.raises(EngineError, match="one statement"),
        ):
            session.execute(sql, max_rows=10)
        with pytest.raises(EngineError, match="one statement"):
            engine.explain(sql)
    with duckdb.connect(path, read_only=True) as connection:
        tables = connection.execute("SELECT count(*) FROM duckdb_tables()").fetchone()
    assert tables == (0,)


def test_a_warehouse_dialect_other_than_its_engines_is_refused_and_ignored(
    pg, pg_warehouse, bob
) -> None:
    from django.core.exceptions import ValidationError

    pg.dialect = "mysql"
    with pytest.raises(ValidationError):
        pg.full_clean()
    # A row saved before the rule (bypassing validation) is still parsed as PostgreSQL:
    # MySQL's backslash escape would have made this two statements to the engine.
    Warehouse.objects.filter(pk=pg.pk).update(dialect="mysql")
    pg.refresh_from_db()
    assert pg.sql_dialect == "postgres"
    response = bob.client().post(
        "/api/v1/queries/",
        {"warehouse": "pg", "sql": "SELECT 'a\\'; CREATE TABLE pwn(x int); --' AS s"},
        format="json",
    )
    assert response.status_code < 500
    with psycopg.connect(pg_warehouse["admin_dsn"], autocommit=True) as owner:
        assert owner.execute("SELECT to_regclass('pwn')").fetchone() == (None,)
