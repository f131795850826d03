"""Query gate fixtures (the DuckDB TPC-H warehouse ``demo`` is in ``tests/conftest.py``): a real
PostgreSQL warehouse database with a read-only role (created per session, dropped after).

PostgreSQL must be reachable at ``QUERYGATE_TEST_PG`` (default
``postgres://postgres@127.0.0.1:5432/postgres``): these tests fail, never skip, without it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from querygate.engines.postgres import PostgresEngine

ADMIN_DSN = os.environ.get("QUERYGATE_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")

# A heavy query for the engine layer (the analysis would refuse it): billions of pairs.
DUCKDB_HEAVY = (
    "SELECT count(*) FROM range(1000000000) a, range(100000) b WHERE a.range + b.range = 7"
)
PG_HEAVY = "SELECT count(*) FROM generate_series(1, 100000000) a, generate_series(1, 100000) b"


@pytest.fixture(autouse=True)
def results_dir(settings, tmp_path) -> Any:
    """Result files of each test in its own directory, never in VAR_DIR."""
    settings.QUERYGATE_RESULTS_DIR = tmp_path / "query-results"
    return settings.QUERYGATE_RESULTS_DIR


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)


_SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY, email text UNIQUE, country text NOT NULL);
CREATE TABLE events (id bigint, customer_id bigint, day date NOT NULL, kind text)
    PARTITION BY RANGE (day);
CREATE TABLE events_2026_01 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE events_2026_02 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
INSERT INTO customers SELECT g, 'c' || g || '@example.com', (ARRAY['jp','us','de'])[1 + g % 3]
    FROM generate_series(1, 2000) g;
INSERT INTO events SELECT g, 1 + g % 2000, DATE '2026-01-01' + (g % 59), 'view'
    FROM generate_series(1, 20000) g;
ANALYZE;
"""


@pytest.fixture(scope="session")
def pg_warehouse() -> Iterator[dict[str, str]]:
    """A fresh database with ``customers`` and a partitioned ``events``, and a login role
    that may only SELECT: ``{"dsn": reader DSN, "admin_dsn": owner DSN, "name": db}``."""
    suffix = uuid.uuid4().hex[:10]
    name, role = f"karimasu_wh_test_{suffix}", f"karimasu_reader_{suffix}"
    base = ADMIN_DSN.rsplit("/", 1)[0]
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    owner_dsn = f"{base}/{name}"
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        owner.execute(_SCHEMA)
        owner.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    reader = psycopg.conninfo.make_conninfo(owner_dsn, user=role)
    try:
        yield {"dsn": reader, "admin_dsn": owner_dsn, "name": name}
    finally:
        with _admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="session")
def pg_engine(pg_warehouse) -> PostgresEngine:
    return PostgresEngine(pg_warehouse["dsn"])


def backend_state(pid: int) -> str | None:
    """The state of backend ``pid`` in pg_stat_activity (None when it is gone)."""
    with _admin() as admin:
        row = admin.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row[0] if row else None


# A heavy Spark query for the engine layer: a three-way non-equi self join of lineitem
# (~2e11 triples at scale 0.001: it never ends by itself in a test).
SPARK_HEAVY = (
    "SELECT count(*) FROM lineitem a, lineitem b, lineitem c "
    "WHERE a.l_comment < b.l_comment AND b.l_comment < c.l_comment"
)


@pytest.fixture(scope="session")
def spark_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Spark Connect server for the whole session (startup is slow and heavy),
    with tiny TPC-H-shaped tables (scale 0.001: nation and region with column
    statistics, lineitem with table statistics only); stopped, JVM included, at the end.
    Fails, never skips, without Java."""
    from querygate.engines import spark_local
    from querygate.engines.spark import SparkEngine

    workdir = tmp_path_factory.mktemp("spark")
    server = spark_local.start(workdir, cores=1)  # one core: the UI and gRPC keep the other
    try:
        engine = SparkEngine(server.connection)
        spark = engine.connect()
        try:
            spark_local.load_tpch(spark, workdir / "tpch", scale=0.001, tables=("nation", "region"))
            spark_local.load_tpch(
                spark, workdir / "tpch", scale=0.001, tables=("lineitem",), column_stats=False
            )
        finally:
            spark.stop()
        yield server
    finally:
        server.stop()
