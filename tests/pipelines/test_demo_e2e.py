"""The issue's end-to-end run on the demo stack: the TPC-H feature query through the gate,
a CPU preprocessing container and a 1-GPU training container on the emulated cluster,
placed by the real scheduling cycle, run by the emulator as real processes
(``demo.pipeline_steps``) that read their inputs and write their outputs through the
datasets claim; twice (all cache hits), with a failing step retried and resumed, and on a
schedule."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from demo.management.commands.demo_pipeline import FEATURES_SQL
from demo.management.commands.demo_pipeline import definition as demo_definition
from pipelines import states
from pipelines.models import DatasetVersion, Pipeline, PipelineRun
from pipelines.services import datasets, runs, schedules
from querygate.models import Query
from querygate.services.execution import execute_query
from scheduler.models import Job
from scheduler.services.cycle import run_cycle
from scheduler.services.reconcile import reconcile
from tests.scheduler.cluster.conftest import backend, emulator, synced  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def _definition(tmp_path, *, train_retries: int = 0, flaky: str = "") -> dict:
    """The demo's pipeline (``manage.py demo_pipeline``), its train step's retries and a
    flaky marker set for the test."""
    definition = demo_definition()
    train = definition["steps"][2]
    train.update(retries=train_retries, retry_delay_s=0)
    if flaky:
        train["env"] = {"KARIMASU_DEMO_FAIL_ONCE": str(tmp_path / flaky)}
    return definition


@pytest.fixture
def stack(alice, settings, monkeypatch, storage, synced, backend, emulator, demo, duckdb_engine):  # noqa: F811
    settings.KARIMASU_JOB_ANNOTATION_PREFIXES = ["emulator.karimasu.io"]
    settings.PIPELINES_DATASETS_MOUNT = "datasets"
    call_command("demo_pipeline")  # the named mount "datasets", and alice's pipeline "churn"
    monkeypatch.setenv("KARIMASU_EMULATOR_VOLUMES", json.dumps({"karimasu-datasets": str(storage)}))

    def drive(run: PipelineRun, *, rounds: int = 120) -> PipelineRun:
        """What the worker, beat and the watcher do, in a loop, until the run ends."""
        for _ in range(rounds):
            runs.advance(run.pk, now=timezone.now())
            for query in Query.objects.filter(status="queued"):
                execute_query(query.pk, engine=duckdb_engine)
            run_cycle(backend, now=timezone.now())
            emulator.settle()
            reconcile(backend, now=timezone.now())
            run.refresh_from_db()
            if run.status in states.RUN_FINAL:
                return run
            time.sleep(0.5)  # the processes run in real time
        return run

    return drive


def test_query_preprocess_train_on_the_emulated_cluster(alice, stack, tmp_path):
    pipeline = Pipeline.objects.get(name="churn")  # as `make run` leaves it
    run = stack(runs.start_run(alice.user, pipeline, now=timezone.now()))
    assert run.status == states.SUCCEEDED, [(s.name, s.message) for s in run.steps.all()]
    steps = {s.name: s for s in run.steps.all()}
    features, prepped = steps["features"].output, steps["prep"].output
    assert prepped.format == "parquet" and 0 < prepped.row_count <= features.row_count
    assert "avg_order" in [c["name"] for c in prepped.schema]
    model = json.loads((datasets.version_dir(steps["train"].output) / "model.json").read_text())
    assert model["rows"] == prepped.row_count and model["slope"] is not None
    train_job = steps["train"].job
    assert train_job.gpus == 1 and train_job.node is not None and len(train_job.gpu_indices) == 1
    assert train_job.status == "succeeded" and steps["prep"].job.gpus == 0
    # lineage from the model back to the SQL
    tree = datasets.lineage(steps["train"].output)
    assert tree["inputs"][0]["inputs"][0]["made_by"]["sql"] == FEATURES_SQL

    # the second run: every step a cache hit, nothing submitted
    jobs, queries = Job.objects.count(), Query.objects.count()
    second = stack(runs.start_run(alice.user, pipeline, now=timezone.now()))
    assert {s.status for s in second.steps.all()} == {states.CACHED}
    assert (Job.objects.count(), Query.objects.count()) == (jobs, queries)


def test_a_failing_step_is_retried_then_resumed(alice, stack, tmp_path):
    flaky = _definition(tmp_path, train_retries=1, flaky="failed-once")
    pipeline = runs.save_pipeline(
        alice.user, team_slug="vision", name="flaky", definition=flaky, now=timezone.now()
    )
    run = stack(runs.start_run(alice.user, pipeline, now=timezone.now()))
    train = run.steps.get(name="train")
    assert run.status == states.SUCCEEDED and train.attempt == 2
    assert "failed" in train.history[0]["message"]

    # no retries left: the run fails, and resuming it runs only the failed step (features and
    # prep are the same as above: cache hits; train's env differs, so it runs)
    pipeline = runs.save_pipeline(
        alice.user, team_slug="vision", name="churn2",
        definition=_definition(tmp_path, train_retries=0, flaky="failed-again"),
        now=timezone.now(),
    )  # fmt: skip
    failed = stack(runs.start_run(alice.user, pipeline, now=timezone.now()))
    assert failed.status == states.FAILED
    prep_jobs = Job.objects.filter(name="churn2-prep").count()
    runs.resume_run(alice.user, failed, now=timezone.now())
    resumed = stack(failed)
    assert resumed.status == states.SUCCEEDED
    assert Job.objects.filter(name="churn2-prep").count() == prep_jobs
    assert Job.objects.filter(name="churn2-train").count() == 2


def test_a_scheduled_run(alice, stack, tmp_path):
    now = timezone.now()
    pipeline = runs.save_pipeline(
        alice.user, team_slug="vision", name="nightly", definition=_definition(tmp_path),
        schedule="*/5 * * * *", now=now,
    )  # fmt: skip
    started = schedules.run_due(now=pipeline.next_run_at + timedelta(seconds=1))
    run = stack(PipelineRun.objects.get(pk=started[0]))
    assert run.status == states.SUCCEEDED and run.trigger == "schedule"
    assert DatasetVersion.objects.filter(dataset__name="churn_model").count() == 1
