"""Full exports past the row cap (issue 19 item 4, issue 18 item 4): a query run with
``export`` writes its whole result, streamed from the engine in Arrow batches, to a Parquet
file that the downloads (Parquet, CSV, Arrow) serve whole, on real DuckDB and PostgreSQL
warehouses; checked against the engine's own count and checksum. The export is bounded in
memory, a kill mid-export leaves no file, an export over the cap says so and keeps the
preview, and only those who may see the query get its files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading

import duckdb
import psycopg
import pyarrow.ipc
import pyarrow.parquet
import pytest
from django.db import connection as db_connection
from django.utils import timezone

from querygate.models import Query, QueryStatus, Warehouse
from querygate.services.enforcement import cancel_query
from querygate.services.execution import execute_query
from querygate.services.results import purge_results
from tests.conftest import assert_error

URL = "/api/v1/queries/"
BIG_ROWS = 250_000
BIG = "SELECT i, s, d, day FROM big ORDER BY i"
#: DuckDB's own checksum of BIG's rows (the same expression over the download).
CHECKSUM = "SELECT count(*), sum(hash(i, s, d, day)) FROM {source}"


@pytest.fixture(scope="session")
def big_path(tmp_path_factory) -> str:
    """A DuckDB warehouse file with ``big``: 250,000 rows of four types."""
    path = str(tmp_path_factory.mktemp("export") / "big.duckdb")
    with duckdb.connect(path) as connection:
        connection.execute(
            "CREATE TABLE big AS SELECT i, 'row ' || i AS s, "
            "CAST(i * 1.25 AS DECIMAL(12, 2)) AS d, "
            "DATE '2026-01-01' + CAST(i % 365 AS INT) AS day FROM range(?) t(i)",
            [BIG_ROWS],
        )
    return path


@pytest.fixture
def bigwh(db, big_path) -> Warehouse:
    warehouse = Warehouse.objects.create(
        name="big", engine="duckdb", connection=big_path, open_to_all=True
    )
    return warehouse


def export_query(user, warehouse: Warehouse, sql: str, *, export: bool = True) -> Query:
    """An audit row as ``submit_query`` writes it for an allowed SELECT with ``export``."""
    return Query.objects.create(
        user=user,
        warehouse=warehouse,
        sql=sql,
        fingerprint="test",
        statement_type="select",
        decision="allow",
        status=QueryStatus.QUEUED,
        runtime_budget_s=120,
        created_at=timezone.now(),
        export_requested=export,
    )


def download(persona, query_id: int, kind: str):
    response = persona.client().get(f"{URL}{query_id}/results/", {"download": kind})
    assert response.status_code == 200, (
        response.content[:500] if hasattr(response, "content") else response
    )
    return response


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def checksum(source: str, params: list | None = None) -> tuple:
    with duckdb.connect() as connection:
        return connection.execute(CHECKSUM.format(source=source), params or []).fetchone()


def test_a_result_past_the_row_cap_downloads_whole(bigwh, bob, big_path, tmp_path) -> None:
    query = execute_query(export_query(bob.user, bigwh, BIG).pk)
    assert query.status == QueryStatus.SUCCEEDED, query.error
    assert (query.row_count, query.truncated) == (10_000, True)  # the preview: the row cap
    assert query.export["status"] == "complete" and query.export["rows"] == BIG_ROWS

    detail = bob.client().get(f"{URL}{query.pk}/").json()
    assert detail["download"] == {
        "rows": BIG_ROWS,
        "complete": True,
        "source": "export",
        "export_status": "complete",
        "message": "",
    }
    page = bob.client().get(f"{URL}{query.pk}/results/", {"page_size": 10}).json()
    assert page["download"]["rows"] == BIG_ROWS and page["row_count"] == 10_000

    with duckdb.connect(big_path, read_only=True) as engine:
        expected = engine.execute(CHECKSUM.format(source="big")).fetchone()
    assert expected[0] == BIG_ROWS

    parquet = tmp_path / "all.parquet"
    response = download(bob, query.pk, "parquet")
    parquet.write_bytes(body(response))
    assert int(response["Content-Length"]) == parquet.stat().st_size
    assert checksum("read_parquet(?)", [str(parquet)]) == expected
    with duckdb.connect() as connection:  # the order of the ORDER BY is kept
        first = connection.execute("SELECT i FROM read_parquet(?) LIMIT 3", [str(parquet)])
        assert first.fetchall() == [(0,), (1,), (2,)]

    stream = download(bob, query.pk, "arrow")
    assert stream["Content-Type"] == "application/vnd.apache.arrow.stream"
    assert stream["X-Karimasu-Rows"] == str(BIG_ROWS)
    table = pyarrow.ipc.open_stream(io.BytesIO(body(stream))).read_all()
    assert table.num_rows == BIG_ROWS and table.column_names == ["i", "s", "d", "day"]
    with duckdb.connect() as connection:
        connection.register("arrow_download", table)
        assert connection.execute(CHECKSUM.format(source="arrow_download")).fetchone() == expected

    csv = tmp_path / "all.csv"
    csv.write_bytes(body(download(bob, query.pk, "csv")))
    lines = csv.read_text(encoding="utf-8").splitlines()
    assert len(lines) == BIG_ROWS + 1 and lines[:2] == ["i,s,d,day", "0,row 0,0.00,2026-01-01"]
    assert (
        checksum(
            "read_csv(?, header = true, columns = {'i': 'BIGINT', 's': 'VARCHAR', "
            "'d': 'DECIMAL(12,2)', 'day': 'DATE'})",
            [str(csv)],
        )
        == expected
    )


def test_without_export_the_download_is_the_capped_result(bigwh, bob) -> None:
    query = execute_query(export_query(bob.user, bigwh, BIG, export=False).pk)
    assert query.status == QueryStatus.SUCCEEDED and query.export is None
    info = bob.client().get(f"{URL}{query.pk}/").json()["download"]
    assert (info["rows"], info["complete"], info["source"]) == (10_000, False, "result")
    assert "10,000" in info["message"] and "export" in info["message"]
    table = pyarrow.ipc.open_stream(io.BytesIO(body(download(bob, query.pk, "arrow")))).read_all()
    assert table.num_rows == 10_000


def test_a_result_within_the_cap_needs_no_export(bigwh, bob) -> None:
    query = execute_query(export_query(bob.user, bigwh, "SELECT i FROM big WHERE i < 50").pk)
    assert (query.status, query.row_count, query.export, query.export_file) == (
        QueryStatus.SUCCEEDED,
        50,
        None,
        "",
    )
    info = bob.client().get(f"{URL}{query.pk}/").json()["download"]
    assert (info["rows"], info["complete"], info["source"]) == (50, True, "result")


def test_over_the_export_cap_the_export_stops_and_the_preview_stays(
    bigwh, bob, results_dir
) -> None:
    bigwh.policy = {"max_export_rows": 100_000}
    bigwh.save()
    query = execute_query(export_query(bob.user, bigwh, BIG).pk)
    assert query.status == QueryStatus.SUCCEEDED
    assert query.export["status"] == "over_cap" and query.export_file == ""
    assert sorted(p.name for p in results_dir.iterdir()) == [f"query-{query.pk}.parquet"]
    info = bob.client().get(f"{URL}{query.pk}/", HTTP_ACCEPT_LANGUAGE="en").json()["download"]
    assert (info["rows"], info["complete"], info["export_status"]) == (10_000, False, "over_cap")
    assert "100,000" in info["message"]
    ja = bob.client().get(f"{URL}{query.pk}/", HTTP_ACCEPT_LANGUAGE="ja").json()["download"]
    assert ja["message"] != info["message"] and "100,000" in ja["message"]
    table = pyarrow.ipc.open_stream(io.BytesIO(body(download(bob, query.pk, "arrow")))).read_all()
    assert table.num_rows == 10_000  # never a cut export presented as complete

    bigwh.policy = {"max_export_mb": 1}  # the bytes cap
    bigwh.save()
    query = execute_query(export_query(bob.user, bigwh, BIG).pk)
    assert query.export["status"] == "over_cap" and query.export["cut_by"] == "bytes"
    assert "1 MiB" in bob.client().get(f"{URL}{query.pk}/").json()["download"]["message"]

    bigwh.policy = {"max_export_rows": 0}  # exports off
    bigwh.save()
    query = execute_query(export_query(bob.user, bigwh, BIG).pk)
    assert query.export["status"] == "disabled" and query.export_file == ""


def test_the_export_policy_keys_are_validated(bigwh) -> None:
    from django.core.exceptions import ValidationError

    for bad in ({"max_export_rows": -1}, {"max_export_mb": "lots"}, {"max_export_rows": True}):
        bigwh.policy = bad
        with pytest.raises(ValidationError):
            bigwh.full_clean()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_kill_mid_export_leaves_no_file(engine, bob, tmp_path, results_dir, request) -> None:
    # Fast to cap (10,001 rows), billions of rows to export: stopped while it writes.
    if engine == "duckdb":
        path = str(tmp_path / "slow.duckdb")
        with duckdb.connect(path) as warehouse_file:
            warehouse_file.execute("CREATE TABLE t AS SELECT i FROM range(100000) r(i)")
        sql = "SELECT a.i, md5(CAST(a.i * b.i AS VARCHAR)) AS h FROM t a, t b"
    else:
        path = request.getfixturevalue("pg_warehouse")["dsn"]
        sql = "SELECT e.id, md5(c.email || e.id) AS h FROM events e, customers c, customers d"
    warehouse = Warehouse.objects.create(name="slow", engine=engine, connection=path)
    warehouse.policy = {"max_export_rows": 1_000_000_000}
    warehouse.save()
    query = export_query(bob.user, warehouse, sql)
    done = threading.Event()

    def run() -> None:
        try:
            execute_query(query.pk, poll_s=0.05)
        finally:
            db_connection.close()
            done.set()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        while not any(".export." in p.name for p in _files(results_dir)):
            assert not done.is_set(), Query.objects.get(pk=query.pk).error
            done.wait(0.05)
        cancel_query(bob.user, query.pk, now=timezone.now(), reason="enough")
    finally:
        worker.join(timeout=60)
    query.refresh_from_db()
    assert query.status == QueryStatus.CANCELLED, (query.export, query.error)
    assert query.export_file == ""
    assert [p.name for p in _files(results_dir)] == []  # no export, no temporary, no result


def _files(directory):
    return list(directory.iterdir()) if directory.is_dir() else []


def test_only_those_who_see_the_query_get_the_export(bigwh, alice, bob, charlie, admin) -> None:
    query = execute_query(export_query(bob.user, bigwh, BIG).pk)
    for kind in ("parquet", "csv", "arrow"):
        assert_error(charlie.client().get(f"{URL}{query.pk}/results/", {"download": kind}), 404)
        assert download(admin, query.pk, kind).status_code == 200
    assert_error(bob.client().get(f"{URL}{query.pk}/results/", {"download": "xlsx"}), 400)


def test_the_purge_deletes_export_files(bigwh, bob, results_dir, settings) -> None:
    query = execute_query(export_query(bob.user, bigwh, BIG).pk)
    assert (results_dir / query.export_file).is_file()
    later = timezone.now() + timezone.timedelta(
        hours=settings.QUERYGATE_RESULTS_RETENTION_HOURS + 1
    )
    purge_results(now=later)
    assert _files(results_dir) == []
    assert_error(bob.client().get(f"{URL}{query.pk}/results/", {"download": "arrow"}), 410)


def test_submit_with_export_through_the_api(demo, bob) -> None:
    response = bob.client().post(
        URL,
        {"warehouse": "demo", "sql": "SELECT n_name FROM nation", "export": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["export_requested"] is True
    assert answer["download"]["rows"] == 25 and answer["download"]["complete"] is True


def test_a_postgres_result_past_the_row_cap_downloads_whole(
    db, bob, pg_warehouse, tmp_path
) -> None:
    warehouse = Warehouse.objects.create(
        name="pg", engine="postgres", connection=pg_warehouse["dsn"], open_to_all=True
    )
    sql = (
        "SELECT e.id, c.id AS cid, c.email, e.day FROM events e CROSS JOIN customers c "
        "WHERE c.id <= 13"
    )
    query = execute_query(export_query(bob.user, warehouse, sql).pk)
    assert query.status == QueryStatus.SUCCEEDED, query.error
    assert query.truncated and query.export["status"] == "complete"
    with psycopg.connect(pg_warehouse["dsn"]) as pg:
        expected = pg.execute(
            "SELECT count(*), sum(e.id * 100000 + c.id), sum(length(c.email)), "
            "sum(e.day - DATE '2026-01-01') FROM events e CROSS JOIN customers c "
            "WHERE c.id <= 13"
        ).fetchone()
    assert expected[0] == 260_000
    parquet = tmp_path / "pg.parquet"
    parquet.write_bytes(body(download(bob, query.pk, "parquet")))
    with duckdb.connect() as connection:
        got = connection.execute(
            "SELECT count(*), sum(id * 100000 + cid), sum(length(email)), "
            "sum(day - DATE '2026-01-01') FROM read_parquet(?)",
            [str(parquet)],
        ).fetchone()
    assert tuple(int(v) for v in got) == tuple(int(v) for v in expected)


_BOUNDED = textwrap.dedent(
    """
    import json, os, resource, sys
    import duckdb
    from querygate.engines.sandbox import MIB, Limits
    from querygate.engines.sandbox_tasks import duckdb_export

    class Channel:
        def send_handle(self, handle): pass
        def on_interrupt(self, callback): pass

    empty, out, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    duckdb.connect(empty).close()
    sql = f"SELECT i, repeat(md5(CAST(i AS VARCHAR)), 64) AS s FROM range({rows}) t(i)"
    payload = {"path": empty, "read_directory": "", "sql": sql, "export_path": out,
               "max_rows": 10**7, "max_bytes": 2**40, "batch_rows": 8192}
    stats = duckdb_export(payload, Limits(memory_bytes=512 * MIB), Channel())["export"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rows": stats.rows, "bytes": stats.bytes, "batches": stats.batches,
                      "peak": peak}))
    """
)


def _export_in_a_process(tmp_path, rows: int) -> dict[str, int]:
    import json

    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    out = tmp_path / f"o{rows}.parquet"
    done = subprocess.run(
        [sys.executable, "-c", _BOUNDED, str(tmp_path / f"e{rows}.duckdb"), str(out), str(rows)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    stats: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    assert pyarrow.parquet.ParquetFile(out).metadata.num_rows == rows
    return stats


def test_an_export_holds_one_batch_at_a_time_not_the_result(tmp_path) -> None:
    """An export of ~3 GB of rows runs in a process whose peak RSS stays far below that: the
    engine's Arrow reader is read batch by batch (a whole-result fetch needs more than the
    result's size). The bound is half the result: the peak is DuckDB's buffer pool (up to
    its 512 MiB budget), one batch, and what the allocators keep, which varies with the
    machine's load (0.35-0.47 GB on an idle one, 1.0 GB seen under a full CI run)."""
    stats = _export_in_a_process(tmp_path, 1_500_000)
    assert stats["rows"] == 1_500_000 and stats["bytes"] > 3_000_000_000
    assert stats["batches"] > 150
    assert stats["peak"] < stats["bytes"] / 2, stats


def test_a_postgres_cancel_between_fetches_stops_the_export(pg_engine, tmp_path) -> None:
    """PostgreSQL drops a cancel that arrives while no statement runs (between two FETCHes
    of the export's cursor): the session's own flag stops the export all the same."""
    from querygate.errors import QueryInterrupted

    target = tmp_path / "export.parquet"
    with pg_engine.session(timeout_s=60) as session:
        session.interrupt()  # nothing runs on the server now: the signal itself is dropped
        with pytest.raises(QueryInterrupted, match="interrupted"):
            session.export(
                "SELECT id, email FROM customers",
                path=str(target),
                max_rows=1_000_000,
                max_bytes=2**30,
                timeout_s=60,
                batch_rows=100,
            )
    assert not target.exists()


PG_TYPES = (
    "SELECT 1::int2 AS a, 2::int4 AS b, 3::int8 AS c, 1.5::float4 AS d, 2.5::float8 AS e, "
    "12.34::numeric(10, 2) AS f, 1::numeric / 3 AS g, true AS h, DATE '2026-01-02' AS i, "
    "TIME '10:00' AS j, TIMESTAMP '2026-01-02 03:04:05' AS k, "
    "TIMESTAMPTZ '2026-01-02 03:04:05+09' AS l, "
    "'6f1c3a4e-0000-4000-8000-000000000001'::uuid AS m, '{\"x\": [1]}'::jsonb AS n, "
    "ARRAY[1, 2] AS o, INTERVAL '1 day' AS p, '\\xdead'::bytea AS q, 'plain' AS r "
    "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL"
)


def test_a_postgres_export_keeps_every_type(pg_engine, tmp_path) -> None:
    target = tmp_path / "types.parquet"
    with pg_engine.session(timeout_s=60) as session:
        stats = session.export(
            PG_TYPES, path=str(target), max_rows=10, max_bytes=2**30, timeout_s=60
        )
    assert (stats.rows, stats.cut_by) == (2, "")
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        kinds = dict(
            connection.execute(
                "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
                [str(target)],
            ).fetchall()
        )
        rows = connection.execute(
            "SELECT a, b, c, d, e, f, round(g, 6), h, i, j, k, CAST(l AS VARCHAR), m, n, o, p, "
            "q, r FROM read_parquet(?) ORDER BY a NULLS LAST",
            [str(target)],
        ).fetchall()
    assert kinds == {
        "a": "SMALLINT",
        "b": "INTEGER",
        "c": "BIGINT",
        "d": "FLOAT",
        "e": "DOUBLE",
        "f": "DOUBLE",  # a cast's typmod is not in the result's description: no precision
        "g": "DOUBLE",
        "h": "BOOLEAN",
        "i": "DATE",
        "j": "TIME",
        "k": "TIMESTAMP",
        "l": "TIMESTAMP WITH TIME ZONE",
        "m": "VARCHAR",
        "n": "VARCHAR",
        "o": "VARCHAR",
        "p": "VARCHAR",
        "q": "VARCHAR",
        "r": "VARCHAR",
    }
    first = rows[0]
    assert first[:3] == (1, 2, 3) and first[5] == 12.34 and first[6] == 0.333333
    assert str(first[8]) == "2026-01-02" and str(first[10]) == "2026-01-02 03:04:05"
    assert first[11] == "2026-01-01 18:04:05+00"
    assert first[12] == "6f1c3a4e-0000-4000-8000-000000000001"
    assert first[13:] == ('{"x": [1]}', "[1, 2]", "1 day, 0:00:00", "\\xdead", "plain")
    assert rows[1] == (None,) * 18


def test_a_duckdb_export_stores_other_types_as_text(db, bob, tmp_path, results_dir) -> None:
    path = str(tmp_path / "types.duckdb")
    duckdb.connect(path).close()
    warehouse = Warehouse.objects.create(name="types", engine="duckdb", connection=path)
    warehouse.row_cap = 1
    warehouse.save()
    sql = (
        "SELECT i, CAST(i AS HUGEINT) AS h, INTERVAL 1 DAY AS iv, [i, i] AS l, "
        "{'k': i} AS st, CAST('ab' AS BLOB) AS b, "
        "CAST('6f1c3a4e-0000-4000-8000-000000000001' AS UUID) AS u, "
        "TIMESTAMPTZ '2026-01-02 03:04:05+00' AS tz FROM range(3) r(i) ORDER BY i"
    )
    query = execute_query(export_query(bob.user, warehouse, sql).pk)
    assert query.export["status"] == "complete", query.export
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        rows = connection.execute(
            "SELECT i, h, iv, l, st, b, u, CAST(tz AS VARCHAR) FROM read_parquet(?)",
            [str(results_dir / query.export_file)],
        ).fetchall()
    assert len(rows) == 3
    assert rows[1][:5] == (1, 1, "1 day", "[1, 1]", "{'k': 1}")
    assert rows[1][5:] == ("ab", "6f1c3a4e-0000-4000-8000-000000000001", "2026-01-02 03:04:05+00")


def test_a_postgres_export_stops_at_its_own_budget(pg_engine, tmp_path) -> None:
    """``statement_timeout`` bounds one FETCH, not the export: its budget is checked between
    fetches (an inline run's export is handed to a worker like any inline run past it)."""
    from querygate.errors import QueryInterrupted

    target = tmp_path / "export.parquet"
    with (
        pg_engine.session(timeout_s=60) as session,
        pytest.raises(QueryInterrupted, match="timeout"),
    ):
        session.export(
            "SELECT e.id, c.email FROM events e, customers c",  # 40 million rows
            path=str(target),
            max_rows=10**9,
            max_bytes=2**40,
            timeout_s=1,
            batch_rows=1000,
        )
    assert not target.exists()


@pytest.mark.django_db(transaction=True)
def test_downloads_stream_from_the_asgi_portal_without_buffering(
    bigwh, bob, big_path, recwarn
) -> None:
    """Served as in production (uvicorn, ``portal.asgi``), each download of the full
    export arrives whole, and Django never had to read a sync iterator into memory first
    (it warns exactly when it does: ``portal.streaming``)."""
    import httpx

    from tests.scheduler.sessions_upstream import serve_portal

    query = execute_query(export_query(bob.user, bigwh, BIG).pk)
    assert query.export["status"] == "complete"
    got: dict[str, bytes] = {}
    with serve_portal() as portal:
        for kind in ("parquet", "csv", "arrow"):
            with httpx.stream(
                "GET",
                f"{portal}{URL}{query.pk}/results/?download={kind}",
                headers={"Authorization": f"Bearer {bob.token}"},
                timeout=120,
            ) as response:
                assert response.status_code == 200, response.read()[:300]
                got[kind] = b"".join(response.iter_bytes())
    buffered = [w for w in recwarn if "must consume synchronous iterators" in str(w.message)]
    assert buffered == []
    assert got["csv"].count(b"\n") == BIG_ROWS + 1  # the header and every row
    table = pyarrow.ipc.open_stream(io.BytesIO(got["arrow"])).read_all()
    assert table.num_rows == BIG_ROWS
    assert pyarrow.parquet.read_metadata(io.BytesIO(got["parquet"])).num_rows == BIG_ROWS
