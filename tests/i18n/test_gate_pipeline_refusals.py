"""A pipeline step refused by the gate says exactly what the gate says (one refusal helper,
``admission.gate_refusal``), in the reader's language, led by the step's name; the gate's
code, line and column and findings are in the details. A query step is analysed by the
gate at preflight and at submission, not a third time for its cache identity."""

from __future__ import annotations

import pytest

from pipelines import definition as defs
from pipelines.models import Pipeline, PipelineRun
from pipelines.services import launch
from portal.accounts.services import set_language
from querygate.models import Query, Warehouse
from querygate.services import analyses
from querygate.services.access import access_warehouse_named
from tests.conftest import assert_error
from tests.pipelines.conftest import FEATURES_SQL, now

pytestmark = pytest.mark.django_db

REFUSED = [
    ("SELECT * FROM read_csv('/etc/passwd')", 400, "query_rejected"),
    ("SELECT * FROM lineitem, orders", 400, "query_rejected"),
    ("SELECT n_name\nFROM nation\nWHERE = = 1", 400, "sql_error"),
    ("SELECT n_nam FROM nation", 400, "sql_error"),
    ("DELETE FROM nation", 400, "query_rejected"),
]


def _pipeline(persona, sql: str, *, acknowledge: bool = False):
    step = {"name": "features", "kind": "query", "warehouse": "demo", "sql": sql,
            "dataset": "features", "acknowledge_warnings": acknowledge}  # fmt: skip
    body = {"name": "p", "team": "vision", "definition": {"steps": [step]}}
    return persona.client().post("/api/v1/pipelines/", body, format="json")


def _gate(persona, sql: str):
    body = {"warehouse": "demo", "sql": sql}
    return persona.client().post("/api/v1/queries/", body, format="json")


@pytest.mark.parametrize(("sql", "status", "code"), REFUSED)
def test_a_refused_step_says_what_the_gate_says(demo, alice, bob, sql, status, code) -> None:
    set_language(bob.user, "ja")
    for persona, lead in ((alice, "Step features: "), (bob, "ステップ features：")):  # noqa: RUF001
        gate = assert_error(_gate(persona, sql), status, code)
        step = assert_error(_pipeline(persona, sql), 400, "step_refused")
        assert step["message"] == lead + gate["message"]
        assert step["details"]["code"] == code and step["details"]["step"] == "features"
        for key in ("findings", "reasons", "decision", "line", "column"):
            assert step["details"].get(key) == gate["details"].get(key), key
        assert "query_id" not in step["details"]  # the preflight writes no audit row
    assert Query.objects.count() == 2  # the two submissions to the gate, nothing else


def test_a_step_with_warnings_needs_its_acknowledgement_like_the_gate(demo, alice, bob) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(policy={"warn_bytes_scanned": 1})
    set_language(bob.user, "ja")
    sql = "SELECT n_name FROM nation"
    for persona, lead in ((alice, "Step features: "), (bob, "ステップ features：")):  # noqa: RUF001
        gate = assert_error(_gate(persona, sql), 409, "acknowledgement_required")
        step = assert_error(_pipeline(persona, sql), 400, "step_refused")
        assert step["message"] == lead + gate["message"]
        assert step["details"]["code"] == "acknowledgement_required"
        assert step["details"]["acknowledge_field"] == "acknowledge_warnings"
        assert step["details"]["reasons"] == gate["details"]["reasons"]
    response = _pipeline(alice, sql, acknowledge=True)
    assert response.status_code == 201, response.content


def test_a_query_steps_identity_is_the_gates_fingerprint_without_a_third_analysis(
    demo, alice, monkeypatch
) -> None:
    """The step's cache identity prints the SQL as the gate's report does (the same cache
    keys as before), without running the gate's analysis again."""
    access = access_warehouse_named(alice.user, "demo", "vision")
    report, _ = analyses.analysis_of(access, FEATURES_SQL, explain=False)
    step = defs.Step(name="features", kind=defs.QUERY, warehouse="demo", sql=FEATURES_SQL)
    pipeline = Pipeline.objects.create(
        name="p",
        team=access.team,
        owner=alice.user,
        definition={},
        created_at=now(),
        updated_at=now(),
    )
    run = PipelineRun.objects.create(
        pipeline=pipeline, number=1, definition={}, created_by=alice.user, created_at=now()
    )

    def no_analysis(*args, **kwargs):
        raise AssertionError("analysed again")

    monkeypatch.setattr(launch, "analysis_of", no_analysis)
    identity = launch.identity(run, step)
    assert identity["fingerprint"] == report.fingerprint != ""
    assert identity["catalog_version"] == demo.catalog_version
