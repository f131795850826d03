"""Pipelines end to end on the real gate (DuckDB TPC-H) and the scheduler's job rows:
materialised datasets, cache hits, retries, resume, refusals before anything runs,
lineage, and crash safety."""

from __future__ import annotations

import duckdb
import pytest

from pipelines import states
from pipelines.models import DatasetVersion, Pipeline, StepRun
from pipelines.services import datasets, runs
from querygate.models import Query
from scheduler import states as job_states
from scheduler.models import Job
from tests.conftest import assert_error
from tests.pipelines.conftest import FEATURES_SQL, copy_inputs, now, three_steps, write_model

pytestmark = pytest.mark.django_db


def _save(persona, definition, **extra):
    return runs.save_pipeline(
        persona.user, team_slug="vision", name="churn", definition=definition, now=now(), **extra
    )


def _count(tpch_path: str) -> int:
    with duckdb.connect(tpch_path, read_only=True) as con:
        row = con.execute(f"SELECT count(*) FROM ({FEATURES_SQL})").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def test_query_container_gpu_pipeline_runs_and_records_lineage(
    alice, demo, gpu_node, driver, tpch_path
):
    pipeline = _save(alice, three_steps())
    run = driver({"prep": copy_inputs, "train": write_model}).finish(
        runs.start_run(alice.user, pipeline, now=now())
    )
    assert run.status == states.SUCCEEDED, run.message
    steps = {s.name: s for s in run.steps.all()}
    assert {s.status for s in steps.values()} == {states.SUCCEEDED}
    features = steps["features"].output
    assert features.row_count == _count(tpch_path) > 0
    assert [c["name"] for c in features.schema] == ["c_custkey", "c_mktsegment", "orders", "spent"]
    prepped = steps["prep"].output
    assert prepped.format == "parquet" and prepped.row_count == features.row_count
    model = steps["train"].output
    assert model.format == "files" and model.files == 1
    assert (datasets.version_dir(model) / "model.bin").read_bytes() == b"weights"
    # the GPU step asked the scheduler for a GPU, with its inputs mounted read-only
    train_job = steps["train"].job
    assert train_job.gpus == 1
    assert train_job.env["KARIMASU_INPUT_CHURN_PREPPED"] == "/karimasu/inputs/churn_prepped"
    # lineage: the model <- the prepped features <- the SQL
    tree = datasets.lineage(model)
    assert tree["made_by"]["kind"] == "container"
    prep_node = tree["inputs"][0]
    assert prep_node["dataset"] == "vision.churn_prepped"
    sql_node = prep_node["inputs"][0]
    assert sql_node["made_by"]["kind"] == "query"
    assert sql_node["made_by"]["sql"] == FEATURES_SQL


def test_second_run_with_unchanged_inputs_is_all_cache_hits(alice, demo, gpu_node, driver):
    pipeline = _save(alice, three_steps())
    drive = driver({"prep": copy_inputs, "train": write_model})
    first = drive.finish(runs.start_run(alice.user, pipeline, now=now()))
    assert first.status == states.SUCCEEDED
    queries, jobs = Query.objects.count(), Job.objects.count()
    second = drive.finish(runs.start_run(alice.user, pipeline, now=now()))
    assert second.status == states.SUCCEEDED
    assert {s.status for s in second.steps.all()} == {states.CACHED}
    assert (Query.objects.count(), Job.objects.count()) == (queries, jobs)  # nothing ran
    assert [s.output_id for s in second.steps.all()] == [s.output_id for s in first.steps.all()]


def test_changed_sql_misses_the_cache_downstream_too(alice, demo, gpu_node, driver):
    drive = driver({"prep": copy_inputs, "train": write_model})
    drive.finish(runs.start_run(alice.user, _save(alice, three_steps()), now=now()))
    changed = three_steps(
        features={"sql": FEATURES_SQL.replace("GROUP BY", "WHERE c_custkey > 10 GROUP BY")}
    )
    run = drive.finish(runs.start_run(alice.user, _save(alice, changed), now=now()))
    assert run.status == states.SUCCEEDED
    assert {s.status for s in run.steps.all()} == {states.SUCCEEDED}
    assert DatasetVersion.objects.filter(dataset__name="churn_model").count() == 2


def test_failed_step_is_retried_by_its_policy(alice, demo, gpu_node, driver):
    outcomes = iter([job_states.FAILED, job_states.SUCCEEDED])

    def flaky(step, output):
        write_model(step, output)
        return next(outcomes)

    pipeline = _save(alice, three_steps(train={"retries": 1, "retry_delay_s": 0}))
    run = driver({"prep": copy_inputs, "train": flaky}).finish(
        runs.start_run(alice.user, pipeline, now=now())
    )
    assert run.status == states.SUCCEEDED
    train = run.steps.get(name="train")
    assert train.attempt == 2
    assert len(train.history) == 1 and "failed" in train.history[0]["message"]
    assert Job.objects.filter(name="churn-train").count() == 2


def test_failed_run_resumes_from_the_failed_step_without_rerunning_what_succeeded(
    alice, demo, gpu_node, driver
):
    behaviour = {"prep": copy_inputs, "train": lambda s, o: job_states.FAILED}
    drive = driver(behaviour)
    run = drive.finish(runs.start_run(alice.user, _save(alice, three_steps()), now=now()))
    assert run.status == states.FAILED
    assert run.steps.get(name="train").status == states.FAILED
    queries, prep_jobs = Query.objects.count(), Job.objects.filter(name="churn-prep").count()
    behaviour["train"] = write_model
    runs.resume_run(alice.user, run, now=now())
    run = drive.finish(run)
    assert run.status == states.SUCCEEDED
    assert Query.objects.count() == queries
    assert Job.objects.filter(name="churn-prep").count() == prep_jobs
    assert run.steps.get(name="train").attempt == 2


def test_downstream_of_a_failed_step_is_skipped(alice, demo, gpu_node, driver):
    drive = driver({"prep": lambda s, o: job_states.FAILED, "train": write_model})
    run = drive.finish(runs.start_run(alice.user, _save(alice, three_steps()), now=now()))
    assert run.status == states.FAILED
    assert run.steps.get(name="train").status == states.SKIPPED
    assert not Job.objects.filter(name="churn-train").exists()


def test_a_bad_sql_step_is_refused_by_the_gate_before_anything_runs(alice, demo, gpu_node):
    bad = three_steps(features={"sql": "SELECT * FROM lineitem, orders"})
    response = alice.client().post(
        "/api/v1/pipelines/",
        {"name": "churn", "team": "vision", "definition": bad},
        format="json",
    )
    error = assert_error(response, 400, "step_refused")
    assert "features" in error["message"]
    assert not Pipeline.objects.exists() and not Query.objects.exists() and not Job.objects.exists()


def test_a_parse_error_names_the_step_line_and_column(alice, demo):
    bad = three_steps(features={"sql": "SELECT c_custkey\nFROM customer WHERE"})
    response = alice.client().post(
        "/api/v1/pipelines/", {"name": "churn", "team": "vision", "definition": bad}, format="json"
    )
    error = assert_error(response, 400, "step_refused")
    assert error["details"]["step"] == "features"
    assert error["details"]["line"] == 2


def test_a_refused_container_step_is_refused_before_anything_runs(alice, demo, gpu_node):
    bad = three_steps(train={"gpus": 64})
    response = alice.client().post(
        "/api/v1/pipelines/", {"name": "churn", "team": "vision", "definition": bad}, format="json"
    )
    error = assert_error(response, 400, "step_refused")
    assert "train" in error["message"]
    assert not Query.objects.exists()


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"steps": []}, "steps"),
        (
            {"steps": [{"name": "a", "kind": "container", "image": "x", "after": ["b"]}]},
            "steps[0].after",
        ),
        (
            {"steps": [
                {"name": "a", "kind": "container", "image": "x", "after": ["b"]},
                {"name": "b", "kind": "container", "image": "x", "after": ["a"]},
            ]},
            "steps",
        ),
        ({"steps": [{"name": "a", "kind": "shell"}]}, "steps[0].kind"),
        (
            {"steps": [{"name": "a", "kind": "container", "image": "x", "gpus": "1"}]},
            "steps[0].gpus",
        ),
        ({"steps": [{"name": "A b", "kind": "container", "image": "x"}]}, "steps[0].name"),
        ("not an object", "definition"),
    ],
)  # fmt: skip
def test_malformed_definitions_get_a_400_naming_the_field(alice, demo, definition, field):
    response = alice.client().post(
        "/api/v1/pipelines/",
        {"name": "p", "team": "vision", "definition": definition},
        format="json",
    )
    error = assert_error(response, 400, "invalid_pipeline")
    assert field in error["details"], error


def test_only_team_members_see_and_run_a_pipeline(alice, charlie, demo, gpu_node):
    pipeline = _save(alice, three_steps())
    assert charlie.client().get(f"/api/v1/pipelines/{pipeline.pk}/").status_code == 404
    assert_error(charlie.client().post(f"/api/v1/pipelines/{pipeline.pk}/run/"), 404)
    response = charlie.client().post(
        "/api/v1/pipelines/",
        {"name": "x", "team": "vision", "definition": three_steps()},
        format="json",
    )
    assert_error(response, 403)
    assert alice.client().get(f"/api/v1/pipelines/{pipeline.pk}/").status_code == 200


def test_a_crash_mid_advance_neither_loses_nor_doubles_a_launch(alice, demo, gpu_node, monkeypatch):
    run = runs.start_run(alice.user, _save(alice, three_steps()), now=now())
    real_move = runs._move
    crashed = []

    def crash_once(row, to, *args, **kwargs):
        if to == states.RUNNING and not crashed:
            crashed.append(row.name)
            raise RuntimeError("worker killed")
        return real_move(row, to, *args, **kwargs)

    monkeypatch.setattr(runs, "_move", crash_once)
    with pytest.raises(RuntimeError):
        runs.advance(run.pk, now=now())
    assert crashed == ["features"]
    assert not Query.objects.exists()  # the launch rolled back with the step's record
    assert run.steps.get(name="features").status == states.PENDING
    runs.advance(run.pk, now=now())
    runs.advance(run.pk, now=now())  # a second worker's pass: nothing new
    assert Query.objects.count() == 1
    step = StepRun.objects.get(run=run, name="features")
    assert step.status == states.RUNNING and step.query_id == Query.objects.get().pk


def test_cancel_stops_the_running_query_and_resume_restarts_it(alice, demo, gpu_node):
    run = runs.start_run(alice.user, _save(alice, three_steps()), now=now())
    runs.advance(run.pk, now=now())
    query = Query.objects.get()
    runs.cancel_run(alice.user, run, now=now())
    query.refresh_from_db()
    assert query.status == "cancelled"
    assert {s.status for s in run.steps.all()} == {states.CANCELLED}
    runs.resume_run(alice.user, run, now=now())
    runs.advance(run.pk, now=now())
    assert Query.objects.count() == 2
    assert run.steps.get(name="features").attempt == 2


def test_a_truncated_result_is_never_published_as_a_whole_dataset(alice, demo, driver):
    demo.row_cap = 10
    demo.save()
    definition = {"steps": [{"name": "all", "kind": "query", "warehouse": "demo",
                             "sql": "SELECT c_custkey FROM customer"}]}  # fmt: skip
    run = driver({}).finish(runs.start_run(alice.user, _save(alice, definition), now=now()))
    assert run.status == states.FAILED
    step = run.steps.get()
    assert "row cap" in step.message
    assert not DatasetVersion.objects.exists()


YAML_DEFINITION = """
name: churn
team: vision
definition:
  steps:
    - name: features
      kind: query
      warehouse: demo
      sql: SELECT c_custkey, c_nationkey FROM customer WHERE c_custkey <= 50
    - name: prep
      kind: container
      image: python:3.11-slim
      inputs: [features]
      cpu_millis: 500
"""


def test_a_definition_in_yaml_is_the_same_pipeline(alice, demo, gpu_node):
    response = alice.client().post(
        "/api/v1/pipelines/", YAML_DEFINITION, content_type="application/yaml"
    )
    assert response.status_code == 201, response.content
    steps = Pipeline.objects.get().definition["steps"]
    assert [s["name"] for s in steps] == ["features", "prep"] and steps[1]["inputs"] == ["features"]


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("name: p\nteam: [vision\n", 3),
        ("a: &x [1, 2]\nb: *x\n", 2),  # aliases are refused (billion laughs)
        ("name: !!python/object/apply:os.system ['true']\n", 1),  # unsafe tags
    ],
)
def test_bad_yaml_is_a_400_with_its_line(alice, body, line):
    response = alice.client().post("/api/v1/pipelines/", body, content_type="application/yaml")
    error = assert_error(response, 400, "malformed_yaml")
    assert error["details"]["line"] == line
