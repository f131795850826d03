"""The data mart: datasets queryable through the gate like tables, per team, and nowhere
else on disk."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pipelines.services import mart, runs
from querygate.engines import engine_for
from querygate.errors import EngineError
from querygate.models import Warehouse
from querygate.services.admission import submit_query
from querygate.services.execution import execute_query
from tests.conftest import assert_error
from tests.pipelines.conftest import now

pytestmark = pytest.mark.django_db

FEATURES = {
    "steps": [
        {
            "name": "features",
            "kind": "query",
            "warehouse": "demo",
            "sql": "SELECT c_custkey, c_nationkey FROM customer WHERE c_custkey <= 50",
            "dataset": "customers",
        }
    ]
}


@pytest.fixture
def published(alice, demo, driver, vision):
    pipeline = runs.save_pipeline(
        alice.user, team_slug="vision", name="p", definition=FEATURES, now=now()
    )
    run = driver({}).finish(runs.start_run(alice.user, pipeline, now=now()))
    assert run.status == "succeeded", run.steps.get().message
    return mart.refresh(vision, now=timezone.now())


def test_a_published_dataset_is_a_table_of_the_teams_mart(alice, published):
    assert published.engine == "datamart" and published.sql_dialect == "duckdb"
    table = published.tables.get(name="customers")
    assert table.rows == 50
    query = submit_query(
        alice.user, published.name, "SELECT count(*) AS n, max(c_custkey) AS top FROM customers",
        now=timezone.now(), inline=False,
    )  # fmt: skip
    query = execute_query(query.pk)
    assert query.status == "succeeded", query.error
    assert query.result["rows"] == [[50, 50]]


def test_the_mart_is_its_teams_only(charlie, published):
    response = charlie.client().post(
        "/api/v1/queries/",
        {"warehouse": published.name, "sql": "SELECT * FROM customers LIMIT 1"},
        format="json",
    )
    assert response.status_code in (403, 404)
    assert_error(response, response.status_code)


def test_the_gate_refuses_file_reads_in_the_mart(alice, published):
    response = alice.client().post(
        "/api/v1/queries/",
        {"warehouse": published.name, "sql": "SELECT * FROM read_csv('/etc/passwd')"},
        format="json",
    )
    assert response.status_code == 400


def test_the_mart_engine_reads_its_teams_directory_and_nothing_else(published, tmp_path):
    engine = engine_for("datamart", published.connection)
    with engine.session(timeout_s=10) as session:
        assert session.execute("SELECT count(*) FROM customers", max_rows=5).rows == [(50,)]
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n1\n")
    with engine.session(timeout_s=10) as session, pytest.raises(EngineError):
        sql = f"SELECT * FROM read_csv('{outside}')"  # noqa: S608 - past the analysis
        session.execute(sql, max_rows=5)
    with engine.session(timeout_s=10) as session, pytest.raises(EngineError):
        session.execute("SET enable_external_access = true", max_rows=5)


def test_a_query_step_reads_the_mart_and_misses_the_cache_when_a_dataset_changes(
    alice, vision, published, driver
):
    reuse = {
        "steps": [
            {"name": "top", "kind": "query", "warehouse": published.name,
             "sql": "SELECT c_nationkey, count(*) AS n FROM customers GROUP BY c_nationkey"}
        ]
    }  # fmt: skip
    pipeline = runs.save_pipeline(
        alice.user, team_slug="vision", name="r", definition=reuse, now=now()
    )
    drive = driver({})
    first = drive.finish(runs.start_run(alice.user, pipeline, now=now()))
    assert first.steps.get().status == "succeeded"
    assert (
        drive.finish(runs.start_run(alice.user, pipeline, now=now())).steps.get().status == "cached"
    )
    mart.refresh(vision, now=timezone.now())  # a new catalog version of the mart
    third = drive.finish(runs.start_run(alice.user, pipeline, now=now()))
    assert third.steps.get().status == "succeeded"
    assert Warehouse.objects.filter(engine="datamart").count() == 1
