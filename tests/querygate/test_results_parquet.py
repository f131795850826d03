"""Results kept as Parquet files: written per finished query on the real DuckDB (TPC-H
sf=0.01) and PostgreSQL warehouses, read back with DuckDB, paged, downloaded as CSV and
Parquet, capped, guarded by the same permissions, purged after the retention, and a failed
write that leaves the audit row with a clear error."""

from __future__ import annotations

import datetime as dt
import os
import time
from datetime import timedelta
from decimal import Decimal

import duckdb
import psycopg
import pytest
from django.utils import timezone

from querygate import tasks
from querygate.api import views as query_views
from querygate.models import Query, QueryStatus, Warehouse
from querygate.services.catalog import refresh_catalog
from querygate.services.execution import execute_query
from querygate.services.results import purge_results
from tests.conftest import assert_error

from .test_kill import queued

URL = "/api/v1/queries/"
TYPED = (
    "SELECT n_nationkey AS k, CAST(n_nationkey * 1.25 AS DECIMAL(10, 2)) AS amount, "
    "n_nationkey / 4 AS ratio, n_name, DATE '1995-01-01' + n_nationkey AS day, "
    "CAST(DATE '1995-01-01' + n_nationkey AS TIMESTAMP) + INTERVAL 90 MINUTE AS at, "
    "NULLIF(n_regionkey, 0) AS region FROM nation ORDER BY n_nationkey"
)
ORDERS = "SELECT o_orderkey, o_totalprice FROM orders ORDER BY o_orderkey LIMIT 2500"


def submit(persona, sql: str, warehouse: str = "demo"):
    response = persona.client().post(URL, {"warehouse": warehouse, "sql": sql}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "succeeded", body
    return body


def parquet_rows(path, select: str = "*") -> list[tuple]:
    with duckdb.connect() as connection:
        sql = f"SELECT {select} FROM read_parquet(?)"  # noqa: S608 - the tests' own SQL
        return connection.execute(sql, [str(path)]).fetchall()


def parquet_types(path) -> dict[str, str]:
    with duckdb.connect() as connection:
        return dict(
            connection.execute(
                "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
                [str(path)],
            ).fetchall()
        )


def on_warehouse(tpch_path: str, sql: str) -> list[tuple]:
    with duckdb.connect(tpch_path, read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_a_duckdb_result_is_a_parquet_file_with_its_types(demo, bob, tpch_path, results_dir):
    body = submit(bob, TYPED)
    row = Query.objects.get(pk=body["id"])
    path = results_dir / row.result_file
    assert row.result_file == f"query-{row.pk}.parquet" and path.is_file()
    assert parquet_types(path) == {
        "k": "INTEGER",
        "amount": "DECIMAL(10,2)",
        "ratio": "DOUBLE",
        "n_name": "VARCHAR",
        "day": "DATE",
        "at": "TIMESTAMP",
        "region": "INTEGER",
    }
    stored = parquet_rows(path)
    assert stored == on_warehouse(tpch_path, TYPED)
    assert stored[0] == (
        0,
        Decimal("0.00"),
        0.0,
        "ALGERIA",
        dt.date(1995, 1, 1),
        dt.datetime(1995, 1, 1, 1, 30),
        None,
    )
    page = bob.client().get(f"{URL}{row.pk}/results/", {"page_size": 2}).json()
    assert page["rows"][1] == [1, "1.25", 0.25, "ARGENTINA", "1995-01-02", "1995-01-02T01:30:00", 1]
    assert page["columns"] == ["k", "amount", "ratio", "n_name", "day", "at", "region"]
    assert page["row_count"] == 25 and page["truncated"] is False


def test_pages_read_from_the_file_in_order(demo, bob, tpch_path) -> None:
    body = submit(bob, ORDERS)
    assert body["row_count"] == 2500 and body["truncated"] is False
    assert len(body["result"]["rows"]) == 100  # the detail shows a preview only
    client = bob.client()
    pages = [
        client.get(f"{URL}{body['id']}/results/", {"page": n, "page_size": 1000}).json()
        for n in (1, 2, 3, 4)
    ]
    assert [len(p["rows"]) for p in pages] == [1000, 1000, 500, 0]
    assert all(p["row_count"] == 2500 for p in pages)
    paged = [tuple(r) for p in pages for r in p["rows"]]
    want = [(key, str(price)) for key, price in on_warehouse(tpch_path, ORDERS)]
    assert paged == want
    assert pages[0]["rows"][:100] == body["result"]["rows"]


def test_csv_and_parquet_downloads(demo, bob, tpch_path, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(query_views, "CSV_CHUNK_ROWS", 1000)  # 2,500 rows: three chunks
    body = submit(bob, ORDERS)
    client = bob.client()
    csv = client.get(f"{URL}{body['id']}/results/", {"download": "csv"})
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert f'filename="query-{body["id"]}.csv"' in csv["Content-Disposition"]
    assert csv.streaming  # read from the file in chunks, never built whole in memory
    lines = b"".join(csv.streaming_content).decode().splitlines()
    want = on_warehouse(tpch_path, ORDERS)
    assert lines[0] == "o_orderkey,o_totalprice" and len(lines) == 2501
    assert lines[1:] == [f"{k},{p}" for k, p in want]  # every row once, in order

    parquet = client.get(f"{URL}{body['id']}/results/", {"download": "parquet"})
    assert parquet.status_code == 200
    assert parquet["Content-Type"] == "application/vnd.apache.parquet"
    assert f'filename="query-{body["id"]}.parquet"' in parquet["Content-Disposition"]
    downloaded = tmp_path / "downloaded.parquet"
    downloaded.write_bytes(b"".join(parquet.streaming_content))
    assert parquet_rows(downloaded) == want
    assert parquet_types(downloaded) == {"o_orderkey": "BIGINT", "o_totalprice": "DECIMAL(15,2)"}
    assert_error(client.get(f"{URL}{body['id']}/results/", {"download": "xlsx"}), 400)


def test_the_row_cap_bounds_the_file_and_says_truncated(demo, bob, results_dir) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(row_cap=7)
    body = submit(bob, "SELECT n_name FROM nation ORDER BY n_name")
    assert body["row_count"] == 7 and body["truncated"] is True
    path = results_dir / Query.objects.get(pk=body["id"]).result_file
    assert [r[0] for r in parquet_rows(path)][-2:] == ["EGYPT", "ETHIOPIA"]
    assert len(parquet_rows(path)) == 7
    page = bob.client().get(f"{URL}{body['id']}/results/", {"page_size": 100}).json()
    assert len(page["rows"]) == 7 and page["truncated"] is True


def test_only_those_who_see_the_query_get_its_files(demo, alice, bob, charlie, admin) -> None:
    query_id = submit(bob, ORDERS)["id"]
    for download in ("csv", "parquet"):
        assert_error(charlie.client().get(f"{URL}{query_id}/results/", {"download": download}), 404)
        for persona in (alice, admin):  # bob's team lead; an admin
            response = persona.client().get(f"{URL}{query_id}/results/", {"download": download})
            assert response.status_code == 200
    assert_error(charlie.client().get(f"{URL}{query_id}/results/"), 404)


@pytest.fixture
def pg(db, pg_warehouse) -> Warehouse:
    warehouse = Warehouse.objects.create(
        name="pg", engine="postgres", connection=pg_warehouse["dsn"], open_to_all=True
    )
    refresh_catalog(warehouse.pk, now=timezone.now())
    warehouse.refresh_from_db()
    return warehouse


PG_TYPED = (
    "SELECT id, CAST(id * 1.25 AS numeric(10, 2)) AS amount, "
    "CAST(id AS double precision) / 4 AS ratio, email, "
    "DATE '2026-01-01' + CAST(id AS integer) AS day, "
    "CAST(DATE '2026-01-01' + CAST(id AS integer) AS timestamp) AS at, "
    "CAST(DATE '2026-01-01' + CAST(id AS integer) AS timestamptz) AS at_tz, "
    "NULLIF(id % 2, 0) AS odd FROM customers WHERE id <= 5 ORDER BY id"
)


def test_a_postgres_result_is_stored_with_mapped_types(pg, bob, pg_warehouse, results_dir) -> None:
    body = submit(bob, PG_TYPED, warehouse="pg")
    path = results_dir / Query.objects.get(pk=body["id"]).result_file
    assert parquet_types(path) == {
        "id": "BIGINT",
        "amount": "DECIMAL(10,2)",
        "ratio": "DOUBLE",
        "email": "VARCHAR",
        "day": "DATE",
        "at": "TIMESTAMP",
        "at_tz": "TIMESTAMP WITH TIME ZONE",
        "odd": "BIGINT",
    }
    with psycopg.connect(pg_warehouse["dsn"]) as connection:
        want = connection.execute(PG_TYPED).fetchall()
    stored = parquet_rows(path, "* EXCLUDE (at_tz), epoch(at_tz)")
    assert stored == [(*row[:6], row[7], row[6].timestamp()) for row in want]
    assert stored[1][-2] is None  # id 2: odd is NULL
    page = bob.client().get(f"{URL}{body['id']}/results/").json()
    first = want[0][6].astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    assert page["rows"][0][6] == first + "Z" and page["rows"][0][1] == "1.25"


def test_expired_results_are_deleted_and_answer_410(demo, bob, results_dir, settings) -> None:
    body = submit(bob, ORDERS)
    path = results_dir / Query.objects.get(pk=body["id"]).result_file
    now = timezone.now()
    assert purge_results(now=now + timedelta(hours=167))["files"] == 0
    assert path.is_file()
    assert purge_results(now=now + timedelta(hours=169)) == {
        "files": 1,
        "rows": 1,
        "swept": 0,
        "analyses": 0,
    }
    assert not path.exists()
    client = bob.client()
    for params in ({}, {"download": "csv"}, {"download": "parquet"}):
        error = assert_error(client.get(f"{URL}{body['id']}/results/", params), 410)
        assert error["code"] == "results_expired" and error["details"]["query_id"] == body["id"]
    detail = client.get(f"{URL}{body['id']}/").json()
    assert detail["result"] is None and detail["result_expired_at"] is not None
    assert detail["status"] == "succeeded" and detail["row_count"] == 2500
    assert purge_results(now=now + timedelta(hours=170))["rows"] == 0  # twice is harmless


def test_the_purge_task_uses_the_retention_setting_and_sweeps_leftovers(
    demo, bob, results_dir, settings
) -> None:
    kept = submit(bob, ORDERS)
    old = time.time() - 3 * 3600
    leftover = results_dir / ".query-999.parquet.abc.tmp"
    orphan = results_dir / "query-998.parquet"
    for stale in (leftover, orphan):
        stale.write_bytes(b"half")
        os.utime(stale, (old, old))
    settings.QUERYGATE_RESULTS_RETENTION_HOURS = 2
    assert tasks.purge_results() == {"files": 0, "rows": 0, "swept": 2, "analyses": 0}
    assert not leftover.exists() and not orphan.exists()
    assert (results_dir / f"query-{kept['id']}.parquet").is_file()
    settings.QUERYGATE_RESULTS_RETENTION_HOURS = 0
    assert tasks.purge_results()["rows"] == 1
    assert not (results_dir / f"query-{kept['id']}.parquet").exists()


def test_a_failed_write_fails_the_query_and_leaves_no_file(demo, bob, results_dir) -> None:
    query = queued(bob.user, demo, "SELECT n_name FROM nation")
    results_dir.mkdir(parents=True)
    # The final name is taken by a directory: the temporary file is written, the rename fails.
    (results_dir / f"query-{query.pk}.parquet").mkdir()
    done = execute_query(query.pk)
    assert done.status == QueryStatus.FAILED and done.error["kind"] == "result_storage"
    assert "result could not be stored" in done.error["message"]
    assert done.result is None and done.result_file == ""
    assert done.sql == "SELECT n_name FROM nation" and done.decision == "allow"
    assert done.row_count == 25 and done.finished_at is not None
    assert sorted(p.name for p in results_dir.iterdir()) == [f"query-{query.pk}.parquet"]
    error = assert_error(bob.client().get(f"{URL}{query.pk}/results/"), 409, "no_result")
    assert "failed" in error["message"]


def test_an_unwritable_results_directory_fails_the_query_clearly(
    demo, bob, tmp_path, settings
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.QUERYGATE_RESULTS_DIR = blocker / "results"
    response = bob.client().post(
        URL, {"warehouse": "demo", "sql": "SELECT n_name FROM nation"}, format="json"
    )
    body = response.json()
    assert response.status_code == 201 and body["status"] == "failed"
    assert body["error"]["kind"] == "result_storage"
    assert Query.objects.get(pk=body["id"]).status == QueryStatus.FAILED


def test_the_purge_drops_analysis_audits_past_their_retention(demo, bob, settings) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from querygate.models import AnalyzeAudit

    client = bob.client()
    for _ in range(2):
        client.post("/api/v1/queries/analyze/", {"warehouse": "demo", "sql": ORDERS}, format="json")
    old, recent = AnalyzeAudit.objects.order_by("pk")
    AnalyzeAudit.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    settings.QUERYGATE_ANALYZE_AUDIT_RETENTION_DAYS = 30
    assert tasks.purge_results()["analyses"] == 1
    assert list(AnalyzeAudit.objects.values_list("pk", flat=True)) == [recent.pk]
