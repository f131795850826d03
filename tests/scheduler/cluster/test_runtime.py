"""A job's max runtime counts from when its container started, not from when its Kubernetes
Job was created: pulling the image or waiting for the node does not eat into it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes import client

from scheduler import states
from scheduler.models import Job
from scheduler.services.reconcile import reconcile

pytestmark = pytest.mark.django_db


def emulated_now(emulator) -> datetime:
    return datetime.fromtimestamp(emulator.clock.now(), tz=UTC)


def test_max_runtime_counts_from_the_container_start(make_admitted, backend, emulator, settings):
    settings.KARIMASU_START_TIMEOUT_SECONDS = 600
    job = make_admitted(duration=1000)
    Job.objects.filter(pk=job.pk).update(max_runtime_s=60)
    job.refresh_from_db()
    core, batch = client.CoreV1Api(backend.api_client), client.BatchV1Api(backend.api_client)
    core.patch_node("tesla-01", {"spec": {"unschedulable": True}})  # the pod has to wait
    reconcile(backend, now=emulated_now(emulator))
    # the cluster's own deadline is only a backstop: max runtime + start timeout
    manifest = batch.read_namespaced_job(job.cluster_name, "karimasu-jobs")
    assert manifest.spec.active_deadline_seconds == 660

    emulator.advance(100)
    reconcile(backend, now=emulated_now(emulator))
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.STARTING, "unschedulable")

    core.patch_node("tesla-01", {"spec": {"unschedulable": False}})
    emulator.settle()
    started = emulated_now(emulator)
    reconcile(backend, now=started)
    job.refresh_from_db()
    assert (job.status, job.started_at) == (states.RUNNING, started)

    emulator.advance(59)
    reconcile(backend, now=emulated_now(emulator))
    job.refresh_from_db()
    assert job.status == states.RUNNING  # 159 s after the Job was created, 59 s of running

    emulator.advance(1)
    reconcile(backend, now=emulated_now(emulator))
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.TIMED_OUT, "deadline_exceeded")
    assert (job.finished_at - job.started_at).total_seconds() == 60
    assert "60" in job.message
    emulator.settle()
    assert batch.list_namespaced_job("karimasu-jobs").items == []  # stopped on the cluster
