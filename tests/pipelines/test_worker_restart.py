"""A pipeline survives its worker being killed mid-run: a new worker (beat's tick) carries
it on from the rows, nothing lost and nothing launched twice. Real Celery workers, the real
broker, the test database; the cluster is played by the test (the job's transitions and
the output its container would write)."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines import states
from pipelines import tasks as pipeline_tasks
from pipelines.models import DatasetVersion, PipelineRun, StepRun
from pipelines.services import datasets, runs
from querygate.models import Query
from scheduler import states as job_states
from scheduler import tasks as scheduler_tasks
from scheduler.models import Job, PriorityClass
from scheduler.services.jobs import transition_job
from tests.pipelines.conftest import FEATURES_SQL, copy_inputs
from tests.portal.test_celery_worker import celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

DEFINITION = {
    "steps": [
        {"name": "features", "kind": "query", "warehouse": "demo", "sql": FEATURES_SQL},
        {"name": "prep", "kind": "container", "image": "python:3.11-slim",
         "inputs": ["features"], "cpu_millis": 500, "memory_mb": 512},
    ]
}  # fmt: skip


def _wait(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError("timed out waiting")


def test_a_killed_worker_loses_nothing_and_runs_nothing_twice(
    alice, demo, gpu_node, settings, tmp_path, monkeypatch
):
    settings.QUERYGATE_RESULTS_DIR = tmp_path / "results"
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    monkeypatch.setattr(scheduler_tasks.schedule_cycle, "delay", lambda: None)
    env = {
        "QUERYGATE_RESULTS_DIR": str(settings.QUERYGATE_RESULTS_DIR),
        "PIPELINES_DATASETS_DIR": str(settings.PIPELINES_DATASETS_DIR),
    }
    queue = f"pipelines-{uuid.uuid4().hex[:8]}"
    with celery_worker(env=env, queue=queue) as (_, first):
        monkeypatch.setattr(
            pipeline_tasks.advance_run,
            "delay",
            lambda run_id: pipeline_tasks.advance_run.apply_async((run_id,), queue=queue),
        )
        pipeline = runs.save_pipeline(
            alice.user, team_slug="vision", name="p", definition=DEFINITION, now=timezone.now()
        )
        run = runs.start_run(alice.user, pipeline, now=timezone.now())
        # The first worker runs the query step and, on a tick of beat (played here every
        # second), launches the container step's job; the submit's own schedule_cycle runs on
        # the same worker (no cluster configured: it decides only) and admits it ...

        def admitted() -> bool:
            pipeline_tasks.tick.apply_async(queue=queue)
            job_id = StepRun.objects.get(run=run, name="prep").job_id
            return job_id is not None and Job.objects.get(pk=job_id).status == job_states.ADMITTED

        _wait(admitted)
        first.send_signal(signal.SIGKILL)  # ... and dies
        first.wait(timeout=30)
    prep = StepRun.objects.get(run=run, name="prep")
    assert prep.status == states.RUNNING
    # The cluster runs the job meanwhile; its container writes the output.
    job = Job.objects.get(pk=prep.job_id)
    start = timezone.now()
    job = transition_job(job, job_states.RUNNING, now=start, started_at=start)
    copy_inputs(prep, datasets.staging_dir(prep))
    end = start + timedelta(minutes=5)
    transition_job(job, job_states.SUCCEEDED, now=end, finished_at=end)
    # A new worker: beat's tick carries every active run on.
    with celery_worker(env=env, queue=queue):
        pipeline_tasks.tick.apply_async(queue=queue).get(timeout=90)  # after any left queued
    run = PipelineRun.objects.get(pk=run.pk)
    assert run.status == states.SUCCEEDED, run.message
    assert Query.objects.count() == 1 and Job.objects.count() == 1  # nothing ran twice
    assert DatasetVersion.objects.count() == 2  # nothing lost
