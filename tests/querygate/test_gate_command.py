"""``manage.py gate``: the demo warehouses (TPC-H ``demo``, TPC-DS ``tpcds``) built from the
PyPI extensions, idempotently, and ``gate analyze`` over every benchmark query: all 22 TPC-H
and all 99 TPC-DS queries analyze without error and are not rejected by the default policy."""

from __future__ import annotations

import io
import json

import duckdb
import pytest
from django.core.management import CommandError, call_command

from querygate.engines import tpc
from querygate.models import Warehouse


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def gate(*args: str) -> str:
    out = io.StringIO()
    call_command("gate", *args, stdout=out)
    return out.getvalue()


def demo_warehouse(*args: str) -> str:
    out = io.StringIO()
    call_command("demo_warehouse", *args, stdout=out)
    return out.getvalue()


def analyze_batch(warehouse: str, dataset: str, tmp_path) -> list[dict]:
    batch = tmp_path / f"{dataset}.jsonl"
    queries = tpc.benchmark_queries(dataset)
    batch.write_text("".join(json.dumps({"id": f"q{n}", "sql": q}) + "\n" for n, q in queries))
    lines = gate("analyze", "--warehouse", warehouse, "--batch", str(batch), "--format", "json")
    reports = [json.loads(line) for line in lines.splitlines()]
    assert [r["id"] for r in reports] == [f"q{n}" for n, _ in queries]
    return reports


def test_demo_warehouse_is_built_once_and_every_tpch_query_passes(db, var_dir, tmp_path) -> None:
    demo_warehouse("--dataset", "tpch", "--scale", "0.01")
    warehouse = Warehouse.objects.get(name="demo")
    assert warehouse.engine == "duckdb" and warehouse.connection.startswith(str(var_dir))
    assert warehouse.tables.filter(present=True).count() == 8
    version = warehouse.catalog_version
    demo_warehouse("--dataset", "tpch", "--scale", "0.01")  # again: no duplicates
    assert Warehouse.objects.filter(name="demo").count() == 1
    warehouse.refresh_from_db()
    assert warehouse.catalog_version == version + 1  # the catalog was refreshed
    with duckdb.connect(warehouse.connection, read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM lineitem").fetchone() == (60175,)

    reports = analyze_batch("demo", "tpch", tmp_path)
    assert len(reports) == 22
    for report in reports:
        assert report["error"] is None, report
        assert report["decision"] != "reject", (report["id"], report["reasons"])
        assert set(report) >= {
            "id",
            "decision",
            "reasons",
            "statement_type",
            "tables",
            "estimate",
            "findings",
            "error",
        }
        assert set(report["estimate"]) >= {
            "rows",
            "bytes_scanned",
            "intermediate_rows",
            "runtime_s",
            "source",
        }


def test_tpcds_warehouse_and_its_99_queries(db, var_dir, tmp_path) -> None:
    demo_warehouse("--dataset", "tpcds", "--scale", "0.01")
    assert Warehouse.objects.get(name="tpcds").tables.filter(present=True).count() == 24
    reports = analyze_batch("tpcds", "tpcds", tmp_path)
    assert len(reports) == 99
    problems = [
        (r["id"], r["error"], r["reasons"])
        for r in reports
        if r["error"] is not None or r["decision"] == "reject"
    ]
    assert problems == []


def test_analyze_a_sql_file_reports_positions(db, var_dir, tmp_path) -> None:
    demo_warehouse("--dataset", "tpch", "--scale", "0.01")
    sql = tmp_path / "bad.sql"
    sql.write_text("SELECT o_orderkey\nFROM orders\nWHERE o_totalprice >")
    report = json.loads(gate("analyze", "--warehouse", "demo", "--sql-file", str(sql)))
    assert report["decision"] == "reject"
    assert report["error"]["kind"] == "parse" and report["error"]["line"] == 3


def test_unknown_warehouse_and_malformed_batch_fail_clearly(db, var_dir, tmp_path) -> None:
    with pytest.raises(CommandError, match="not found"):
        gate("analyze", "--warehouse", "nope", "--sql-file", str(tmp_path / "x.sql"))
    demo_warehouse("--dataset", "tpch", "--scale", "0.01")
    batch = tmp_path / "bad.jsonl"
    batch.write_text('{"sql": "SELECT 1"}\n')
    with pytest.raises(CommandError, match="line 1"):
        gate("analyze", "--warehouse", "demo", "--batch", str(batch))
