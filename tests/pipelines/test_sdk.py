"""The Python SDK against a live server: a pipeline defined with the builder is the JSON the
API takes, saved (or refused with the gate's reason), run and watched to the end."""

from __future__ import annotations

import io

import pytest

from karimasu_client import ApiError, Karimasu, Pipeline
from pipelines import tasks as pipeline_tasks
from pipelines.models import PipelineRun
from querygate import tasks as gate_tasks
from scheduler import tasks as scheduler_tasks
from scheduler.models import PriorityClass
from tests.pipelines.conftest import FEATURES_SQL, copy_inputs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kms(live_server, alice, demo, gpu_node, monkeypatch) -> Karimasu:
    # No worker here: the test's driver plays it (and the cluster) between polls.
    monkeypatch.setattr(gate_tasks.run_query, "delay", lambda query_id: None)
    monkeypatch.setattr(scheduler_tasks.schedule_cycle, "delay", lambda: None)
    monkeypatch.setattr(pipeline_tasks.advance_run, "delay", lambda run_id: None)
    monkeypatch.setattr(pipeline_tasks.refresh_mart, "delay", lambda team_id: None)
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    return Karimasu(live_server.url, token=alice.token)


def _pipeline(sql: str = FEATURES_SQL) -> Pipeline:
    p = Pipeline("churn", team="vision")
    features = p.query("features", warehouse="demo", sql=sql, dataset="churn_features")
    p.container("prep", image="python:3.11-slim", inputs=[features], retries=1, cpu_millis=500)
    return p


def test_the_builder_makes_the_apis_json():
    assert _pipeline().to_dict() == {
        "steps": [
            {"name": "features", "kind": "query", "warehouse": "demo", "sql": FEATURES_SQL,
             "dataset": "churn_features", "retries": 0},
            {"name": "prep", "kind": "container", "image": "python:3.11-slim",
             "inputs": ["features"], "retries": 1, "cpu_millis": 500},
        ]
    }  # fmt: skip
    with pytest.raises(ValueError, match="already exists"):
        _pipeline().query("features", warehouse="demo", sql="SELECT 1")


def test_save_run_and_wait_from_a_notebook(kms, driver):
    saved = kms.pipelines.save(_pipeline())
    assert saved["name"] == "churn" and saved["team"] == "vision"
    run = kms.pipelines.run(_pipeline())
    drive = driver({"prep": copy_inputs})
    out = io.StringIO()
    done = kms.pipelines.wait(
        run["id"], out=out, sleep=lambda _: drive.step(PipelineRun.objects.get(pk=run["id"]))
    )
    assert done["status"] == "succeeded"
    assert [s["status"] for s in done["steps"]] == ["succeeded", "succeeded"]
    assert f"[run {run['id']}] features: running" in out.getvalue()
    assert done["steps"][1]["output"]["dataset"] == "prep"  # named after the step
    datasets = {d["name"]: d for d in kms.pipelines.datasets()}
    tree = kms.pipelines.lineage(datasets["prep"]["id"])
    assert tree["inputs"][0]["made_by"]["sql"] == FEATURES_SQL


def test_a_refused_step_raises_with_the_gates_reason(kms):
    with pytest.raises(ApiError) as caught:
        kms.pipelines.save(_pipeline("SELECT * FROM lineitem, orders"))
    assert caught.value.code == "step_refused"
    assert caught.value.details["step"] == "features"
