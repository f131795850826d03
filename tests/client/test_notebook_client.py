"""The notebook client against a live server: the gate's answers become results or
exceptions with findings, rows come back in full, files download, and jobs and bookings
go through the same API."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from karimasu_client import (
    ApiError,
    Karimasu,
    NeedsAcknowledgement,
    QueryFailed,
    QueryRejected,
)
from querygate import tasks as gate_tasks
from querygate.models import Query
from scheduler import tasks as scheduler_tasks
from scheduler.models import PriorityClass
from tests.scheduler.conftest import make_node

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kms(live_server, alice, demo, settings, tmp_path, monkeypatch) -> Karimasu:
    settings.QUERYGATE_RESULTS_DIR = tmp_path / "results"
    # No worker in these tests: what goes to Celery stays queued.
    monkeypatch.setattr(gate_tasks.run_query, "delay", lambda query_id: None)
    monkeypatch.setattr(scheduler_tasks.schedule_cycle, "delay", lambda: None)
    return Karimasu(live_server.url, token=alice.token)


def test_the_client_needs_a_server_and_a_token(monkeypatch) -> None:
    monkeypatch.delenv("KARIMASU_URL", raising=False)
    monkeypatch.delenv("KARIMASU_TOKEN", raising=False)
    with pytest.raises(ValueError, match="KARIMASU_TOKEN"):
        Karimasu()
    monkeypatch.setenv("KARIMASU_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("KARIMASU_TOKEN", "kms_x")
    assert Karimasu().url == "http://127.0.0.1:1"


def test_who_am_i_and_which_warehouses(kms) -> None:
    assert kms.me()["username"] == "alice"
    assert [w["name"] for w in kms.warehouses()] == ["demo"]


def test_analyze_shows_the_findings_without_running(kms) -> None:
    analysis = kms.analyze("SELECT count(*)\nFROM lineitem, orders", warehouse="demo")
    assert analysis.decision == "warn"
    assert [f["rule"] for f in analysis.findings] == ["cartesian-join"]
    assert analysis.estimate is not None and analysis.estimate["intermediate_rows"] > 10**8
    assert "warn cartesian-join at 2:16" in str(analysis)
    assert "<td>cartesian-join</td>" in analysis._repr_html_()
    assert not Query.objects.exists()  # analysis only: nothing ran, nothing audited as a run


def test_a_query_returns_every_row_and_downloads(kms, tmp_path) -> None:
    result = kms.sql("SELECT n_nationkey, n_name FROM nation ORDER BY 1", warehouse="demo")
    assert result.columns == ["n_nationkey", "n_name"]
    assert len(result) == 25 and result.rows[0] == [0, "ALGERIA"]
    assert next(result.records()) == {"n_nationkey": 0, "n_name": "ALGERIA"}
    assert not result.truncated
    assert "<th>n_name</th>" in result._repr_html_()
    parquet = result.download(str(tmp_path / "nations.parquet"))
    assert duckdb.execute("SELECT count(*) FROM read_parquet(?)", [parquet]).fetchone() == (25,)
    csv = Path(result.download(str(tmp_path / "nations.csv"), format="csv"))
    assert csv.read_text(encoding="utf-8").splitlines()[:2] == ["n_nationkey,n_name", "0,ALGERIA"]


def test_results_longer_than_a_page_come_back_whole(kms) -> None:
    result = kms.sql("SELECT l_orderkey FROM lineitem LIMIT 7000", warehouse="demo")
    assert len(result) == 7000  # two pages of 5,000


def test_a_warned_query_runs_once_acknowledged(kms) -> None:
    sql = "SELECT n_name FROM nation WHERE 1 = 1"
    with pytest.raises(NeedsAcknowledgement) as warned:
        kms.sql(sql, warehouse="demo")
    assert warned.value.status == 409
    assert [f["rule"] for f in warned.value.findings] == ["always-true-where"]
    assert len(kms.sql(sql, warehouse="demo", acknowledge=True)) == 25


def test_refusals_carry_the_gates_reasons(kms) -> None:
    with pytest.raises(QueryRejected) as rejected:
        kms.sql("SELECT * FROM read_csv('/etc/passwd')", warehouse="demo")
    assert rejected.value.code == "query_rejected"
    assert [f["rule"] for f in rejected.value.findings] == ["table-function-not-allowed"]
    with pytest.raises(QueryRejected) as malformed:
        kms.sql("SELECT n_name\nFROM nation WHERE", warehouse="demo")
    assert malformed.value.code == "sql_error"
    assert malformed.value.details["line"] == 2
    with pytest.raises(ApiError) as unknown:
        kms.analyze("SELECT 1", warehouse="nowhere")
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")


def test_a_slow_query_times_out_in_the_client_and_can_be_cancelled(kms) -> None:
    sql = "SELECT count(*) FROM lineitem, orders"  # large enough to go to the queue
    with pytest.raises(TimeoutError, match="still queued"):
        kms.sql(sql, warehouse="demo", acknowledge=True, wait=0.3, poll=0.1)
    query = Query.objects.get(status="queued")
    assert kms.cancel(query.pk)["status"] == "cancelled"
    with pytest.raises(QueryFailed, match="cancelled"):
        kms.result(query.pk)


def test_jobs_and_bookings_through_the_client(kms, alice) -> None:
    # A transactional test may run after another one flushed the migrations' default rows.
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    make_node("tesla-01")
    job = kms.jobs.submit(
        name="resnet", team="vision", image="pytorch/pytorch:2.4", gpus=1, max_runtime_s=600
    )
    assert job["status"] == "queued" and kms.jobs.get(job["id"])["name"] == "resnet"
    assert [j["id"] for j in kms.jobs.list()] == [job["id"]]
    with pytest.raises(ApiError) as no_log:
        kms.jobs.logs(job["id"])
    assert no_log.value.code == "no_log"
    assert kms.jobs.cancel(job["id"])["status"] == "cancelled"
    make_node("tesla-02")
    gang = kms.jobs.submit(
        name="ddp", team="vision", image="pytorch/pytorch:2.4", gpus=1, nodes=2, max_runtime_s=600
    )
    assert (gang["nodes"], gang["gpus"], gang["placements"]) == (2, 1, [])
    with pytest.raises(ApiError) as too_many:
        kms.jobs.submit(
            name="ddp", team="vision", image="pytorch/pytorch:2.4", nodes=3, max_runtime_s=600
        )
    assert too_many.value.status == 400
    kms.jobs.cancel(gang["id"])

    booking = kms.bookings.borrow(team="vision", gpus=1, hours=1, purpose="debugging")
    assert booking["holder"] == "alice"
    assert kms.bookings.release(booking["id"])["status"] == "released"
    again = kms.bookings.borrow(team="vision", gpus=1, hours=1)
    assert kms.bookings.cancel(again["id"]) is None  # 204
    assert kms.bookings.get(again["id"])["status"] == "released"


def test_an_on_demand_session_through_the_client(kms, alice) -> None:
    from scheduler.models import WorkspaceImage

    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    make_node("tesla-01")
    WorkspaceImage.objects.create(name="lab", image="jupyter/base:1", port=8888)
    session = kms.sessions.start(image="lab", team="vision", gpus=1, hours=2)
    assert (session["state"], session["on_demand"], session["duration_s"]) == ("queued", True, 7200)
    assert kms.sessions.extend(session["id"], minutes=30)["duration_s"] == 9000
    assert [s["id"] for s in kms.sessions.list(live=1)] == [session["id"]]
    with pytest.raises(ApiError) as too_long:
        kms.sessions.start(image="lab", team="vision", gpus=1, hours=1000)
    assert too_long.value.status == 400
    assert kms.sessions.stop(session["id"])["state"] == "stopped"


def test_to_pandas_streams_every_row_past_the_row_cap(kms, demo, tpch_path) -> None:
    demo.row_cap = 1000
    demo.save()
    sql = "SELECT l_orderkey, l_linenumber, l_extendedprice FROM lineitem"
    result = kms.sql(sql, warehouse="demo")
    with duckdb.connect(tpch_path, read_only=True) as engine:
        count, keys, prices = engine.execute(
            "SELECT count(*), sum(l_orderkey * 10 + l_linenumber), sum(l_extendedprice) "
            "FROM lineitem"
        ).fetchone()
    assert len(result) == 1000 and result.truncated  # the stored rows: the row cap
    assert result.download_rows == count and result.complete
    frame = result.to_pandas()
    assert list(frame.columns) == ["l_orderkey", "l_linenumber", "l_extendedprice"]
    assert len(frame) == count > 1000
    assert int((frame.l_orderkey * 10 + frame.l_linenumber).sum()) == keys
    assert frame.l_extendedprice.astype(object).sum() == prices
    capped = kms.sql(sql, warehouse="demo", export=False)
    assert not capped.complete and len(capped.to_pandas()) == 1000


def test_progress_true_prints_a_status_line(kms, capsys) -> None:
    sql = "SELECT count(*) FROM lineitem, orders"  # large enough to go to the queue
    with pytest.raises(TimeoutError):
        kms.sql(sql, warehouse="demo", acknowledge=True, wait=0.3, poll=0.1, progress=True)
    assert "queued" in capsys.readouterr().err
    kms.cancel(Query.objects.get(status="queued").pk)
