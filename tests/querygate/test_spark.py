"""The Spark SQL engine: the analysis in the ``spark`` dialect stops the same classes of bad
SQL as on DuckDB (with Spark's own escape hatches), and, against a real local Spark Connect
server (``spark`` marker, one server per session), the catalog from the metastore, EXPLAIN
COST, execution under the row cap and the runtime budget, and a kill that Spark's own status
API confirms within 2 s."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from querygate.analysis import Catalog, ColumnStats, TableStats, analyze
from querygate.engines import engine_for
from querygate.engines.spark import SparkEngine, parse_connection, plan_statistics, spark_time
from querygate.errors import EngineError, QueryInterrupted
from tests.querygate.conftest import SPARK_HEAVY

CATALOG = Catalog(
    (
        TableStats(
            "nation",
            (
                ColumnStats("n_nationkey", "bigint", 8, distinct=25),
                ColumnStats("n_name", "string", 8, distinct=25),
            ),
            schema="default",
            rows=25,
            bytes=400,
        ),
    ),
    default_schema="default",
)

# (class of bad SQL, the DuckDB statement of that class, its Spark twin, the rule on both)
SAME_CLASSES = [
    (
        "file as table",
        "SELECT * FROM '/etc/passwd.csv'",
        "SELECT * FROM csv.`/etc/passwd`",
        "file-path-table",
    ),
    (
        "file as table (url)",
        "SELECT * FROM 's3://b/x.parquet'",
        "SELECT * FROM parquet.`s3a://b/x`",
        "file-path-table",
    ),
    (
        "file reader",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_files('/etc/passwd')",
        "table-function-not-allowed",
    ),
    ("settings", "SET threads = 64", "SET spark.sql.ansi.enabled = false", "statement-not-allowed"),
    ("settings reset", "RESET threads", "RESET", "statement-not-allowed"),
    ("code loading", "INSTALL httpfs", "ADD JAR /tmp/evil.jar", "statement-not-allowed"),
    ("code loading (file)", "LOAD httpfs", "ADD FILE '/tmp/evil.py'", "statement-not-allowed"),
    (
        "function creation",
        "CREATE MACRO f(x) AS x",
        "CREATE TEMPORARY FUNCTION f AS 'a.B'",
        "statement-not-allowed",
    ),
    (
        "calls outside",
        "SELECT getenv('HOME')",
        "SELECT reflect('java.lang.System', 'exit', 1)",
        "function-not-allowed",
    ),
    (
        "calls outside (2)",
        "SELECT getenv('HOME')",
        "SELECT java_method('java.lang.Thread', 'x')",
        "function-not-allowed",
    ),
    ("write", "DELETE FROM nation", "INSERT INTO nation SELECT * FROM nation", "write-not-allowed"),
    (
        "write files",
        "COPY nation TO '/tmp/x.csv'",
        "INSERT OVERWRITE DIRECTORY '/tmp/x' SELECT * FROM nation",
        "file-path-table",
    ),
    (
        "read files into the catalog",
        "ATTACH '/tmp/x.db'",
        "LOAD DATA LOCAL INPATH '/etc/passwd' INTO TABLE nation",
        "statement-not-allowed",
    ),
    (
        "generator bomb",
        "SELECT count(*) FROM range(100000000000)",
        "SELECT explode(sequence(1, 100000000000))",
        "generator-too-large",
    ),
    (
        "value bomb",
        "SELECT repeat('x', 1000000000)",
        "SELECT repeat('x', 1000000000)",
        "value-too-large",
    ),
]


@pytest.mark.parametrize(("kind", "duck", "spark", "rule"), SAME_CLASSES, ids=lambda v: str(v))
def test_spark_stops_the_classes_duckdb_stops(kind: str, duck: str, spark: str, rule: str):
    duck_catalog = Catalog(CATALOG.tables, default_schema="main")
    duck_report = analyze(duck, dialect="duckdb", catalog=duck_catalog)
    spark_report = analyze(spark, dialect="spark", catalog=CATALOG)
    assert duck_report.decision.value == "reject", kind
    assert spark_report.decision.value == "reject", kind
    assert rule in {f.rule for f in spark_report.findings}, [
        (f.rule, f.message) for f in spark_report.findings
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE FUNCTION f AS 'com.evil.Udf' USING JAR '/tmp/evil.jar'",
        "SELECT TRANSFORM(n_name) USING 'cat /etc/passwd' FROM nation",
        "CREATE TABLE t USING csv LOCATION '/etc'",
        "CREATE TABLE t USING csv OPTIONS (path '/etc/passwd')",
        "ADD JAR /tmp/evil.jar",
    ],
)
def test_spark_escape_hatches_are_refused_even_with_writes(sql: str):
    from querygate.analysis.policy import Policy

    report = analyze(sql, dialect="spark", catalog=CATALOG, policy=Policy(allow_writes=True))
    rules = {f.rule for f in report.findings}
    assert report.decision.value == "reject"
    assert rules & {"statement-not-allowed", "file-path-table"}, rules


def test_spark_allows_plain_queries():
    report = analyze(
        "SELECT n_name, xxhash64(n_name), sha2(n_name, 256) FROM nation WHERE n_nationkey < 5 "
        "LIMIT 3",
        dialect="spark",
        catalog=CATALOG,
    )
    assert report.decision.value == "allow", [f.rule for f in report.findings]


def test_connection_and_plan_parsing():
    assert parse_connection("sc://h:15002/;ui=http://h:4040/;token=x") == (
        "sc://h:15002/;token=x",
        "http://h:4040",
    )
    with pytest.raises(EngineError):
        parse_connection("postgres://x")
    plan = (
        "== Optimized Logical Plan ==\nAggregate [count(1)], Statistics(sizeInBytes=16.0 B, "
        "rowCount=1)\n+- Relation x, Statistics(sizeInBytes=2.0 MiB, rowCount=6.0E+4)\n"
        "== Physical Plan =="
    )
    assert plan_statistics(plan) == {"rows": 1, "cost": None, "bytes": 16}
    assert plan_statistics("nothing") == {"rows": None, "cost": None, "bytes": None}
    assert isinstance(engine_for("spark", "sc://h:1"), SparkEngine)


def test_an_unreachable_server_is_an_engine_error_at_once():
    from querygate.engines.spark_local import free_port

    engine = SparkEngine(f"sc://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(EngineError, match="cannot reach Spark Connect"):
        engine.catalog()
    with pytest.raises(EngineError):
        engine.explain("SELECT 1")
    assert engine.cancel({"session_id": "x", "tag": "y"}) is False
    assert time.monotonic() - started < 10


# --- against a real local Spark -------------------------------------------------------


@pytest.fixture
def spark_engine(spark_warehouse: Any) -> SparkEngine:
    return SparkEngine(spark_warehouse.connection)


@pytest.mark.spark
def test_catalog_from_the_metastore(spark_engine: SparkEngine):
    tables = {t.name: t for t in spark_engine.catalog(timeout_s=300)}
    assert {"nation", "region", "lineitem"} <= set(tables)
    nation = tables["nation"]
    assert nation.schema == "default"
    assert nation.rows == 25
    assert nation.bytes > 0
    columns = {c.name: c for c in nation.columns}
    assert columns["n_regionkey"].distinct == 5  # ANALYZE ... FOR ALL COLUMNS
    assert columns["n_name"].type == "string"
    assert tables["lineitem"].rows > 1000  # table statistics only: rows, no NDVs
    assert all(c.distinct == 0 for c in tables["lineitem"].columns)


@pytest.mark.spark
def test_explain_cost_and_execution(spark_engine: SparkEngine):
    plan = spark_engine.explain("SELECT * FROM nation WHERE n_nationkey < 5", timeout_s=120)
    assert plan["bytes"] > 0
    assert plan["rows"] is not None and 0 < plan["rows"] <= 25
    with spark_engine.session(timeout_s=120) as session:
        result = session.execute(
            "SELECT n_name, n_nationkey, r_name FROM nation JOIN region "
            "ON n_regionkey = r_regionkey ORDER BY n_nationkey",
            max_rows=3,
        )
    assert result.columns == ["n_name", "n_nationkey", "r_name"]
    assert result.types == ("VARCHAR", "INTEGER", "VARCHAR")
    assert len(result.rows) == 3 and result.truncated and session.cut_by == "rows"
    assert result.rows[0][1] == 0
    with spark_engine.session(timeout_s=60) as session, pytest.raises(EngineError):
        session.execute("SELECT no_such_column FROM nation", max_rows=3)


@pytest.mark.spark
def test_a_spark_export_streams_every_row_to_parquet(spark_engine: SparkEngine, tmp_path):
    # Before the kill tests: their cancelled heavy jobs may hold the server's one core a while.
    import duckdb

    sql = "SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipdate, l_comment FROM lineitem"
    with spark_engine.session(timeout_s=120) as session:
        stats = session.export(
            sql,
            path=str(tmp_path / "all.parquet"),
            max_rows=1_000_000,
            max_bytes=2**30,
            timeout_s=120,
            batch_rows=1000,
        )
        expected = session.execute(
            "SELECT count(*), sum(l_orderkey * 10 + l_linenumber), sum(l_extendedprice) "
            "FROM lineitem",
            max_rows=1,
        ).rows[0]
        cut = session.export(
            sql, path=str(tmp_path / "cut.parquet"), max_rows=100, max_bytes=2**30, timeout_s=120
        )
    assert stats.cut_by == "" and stats.rows == expected[0] > 1000 and stats.batches > 1
    with duckdb.connect() as connection:
        got = connection.execute(
            "SELECT count(*), sum(l_orderkey * 10 + l_linenumber), sum(l_extendedprice), "
            "typeof(any_value(l_shipdate)) FROM read_parquet(?)",
            [str(tmp_path / "all.parquet")],
        ).fetchone()
    assert got[:3] == tuple(expected) and got[3] == "DATE"
    assert cut.cut_by == "rows"  # over the cap: the caller discards the file


def _run_in_thread(session: Any, sql: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = session.execute(sql, max_rows=10)
        except Exception as error:
            out["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _wait_running(engine: SparkEngine, handle: dict[str, Any], within_s: float) -> list[int]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        jobs = engine.running_jobs(handle)
        if jobs:
            return jobs
        time.sleep(0.1)
    raise AssertionError("the heavy query never showed a running Spark job")


def _wait_gone(engine: SparkEngine, handle: dict[str, Any], killed_at: float) -> None:
    """Wait until Spark's status API shows none of the handle's jobs running, then check,
    by Spark's own completion times, that every job still running at ``killed_at`` (or
    started after it) was cancelled (FAILED) within 2 s of it (the status API itself may
    answer slowly on a busy machine, so its answer time is not what is measured).

    The heavy query runs as several Spark jobs (the broadcasts, then the join): a kill may
    land in the gap between two of them, with no job running at that instant. Then none is
    checked here; the callers check that the query itself was interrupted, and here that no
    job of it ran on past the kill."""
    deadline = time.monotonic() + 60
    while engine.running_jobs(handle):
        assert time.monotonic() < deadline, "the Spark job still runs a minute after the kill"
        time.sleep(0.1)
    jobs = engine.jobs(handle)
    assert jobs, "Spark's status API shows no job of the heavy query"
    killed = [j for j in jobs if spark_time(j["completionTime"]) > killed_at]
    for job in killed:
        assert job["status"] == "FAILED", job  # cancelled, not finished
        late = spark_time(job["completionTime"]) - killed_at
        assert late < 2.0, f"job {job['jobId']} ended {late:.2f} s after the kill"


@pytest.mark.spark
def test_kill_from_another_client_is_confirmed_by_sparks_status(spark_engine: SparkEngine):
    with spark_engine.session(timeout_s=300) as session:
        thread, out = _run_in_thread(session, SPARK_HEAVY)
        _wait_running(spark_engine, session.handle, 120)
        # another process would do the same: a new client, only the stored handle
        killer = SparkEngine(spark_engine_connection(spark_engine))
        killed_at = time.time()
        assert killer.cancel(dict(session.handle)) is True
        _wait_gone(spark_engine, session.handle, killed_at)
        thread.join(30)
    assert not thread.is_alive()
    assert isinstance(out.get("error"), QueryInterrupted)


@pytest.mark.spark
def test_runtime_budget_stops_the_spark_job(spark_engine: SparkEngine):
    with spark_engine.session(timeout_s=8) as session:
        thread, out = _run_in_thread(session, SPARK_HEAVY)
        started = time.time()
        _wait_running(spark_engine, session.handle, 8)
        thread.join(60)
        assert isinstance(out.get("error"), QueryInterrupted) and "timeout" in str(out["error"])
        _wait_gone(spark_engine, session.handle, started + 8)


def spark_engine_connection(engine: SparkEngine) -> str:
    return f"{engine.url}/;ui={engine.ui_url}"


@pytest.mark.spark
@pytest.mark.django_db
def test_demo_registration_and_a_query_through_the_gate(spark_warehouse: Any, bob, settings):
    from django.core.management import call_command

    from querygate.models import Warehouse

    settings.QUERYGATE_INLINE_SECONDS = 120  # a busy machine: keep the run inline
    settings.QUERYGATE_EXPLAIN_SECONDS = 60
    call_command("demo_spark", "--connection", spark_warehouse.connection)
    warehouse = Warehouse.objects.get(name="spark")
    assert warehouse.engine == "spark" and warehouse.catalog_version >= 1
    assert warehouse.tables.filter(present=True, name="nation", rows=25).exists()

    client = bob.client()
    sql = "SELECT n_name, n_regionkey FROM nation WHERE n_regionkey = 1 ORDER BY n_name"
    response = client.post("/api/v1/queries/", {"warehouse": "spark", "sql": sql}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "succeeded" and body["mode"] == "inline"
    assert [r[0] for r in body["result"]["rows"]][:2] == ["ARGENTINA", "BRAZIL"]
    assert body["analysis"]["explain"]["bytes"] > 0  # EXPLAIN COST

    refused = client.post(
        "/api/v1/queries/",
        {"warehouse": "spark", "sql": "SELECT * FROM parquet.`/etc`"},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "query_rejected"


def test_spark_module_doctests():
    import doctest

    import querygate.engines.spark

    assert doctest.testmod(querygate.engines.spark).failed == 0
