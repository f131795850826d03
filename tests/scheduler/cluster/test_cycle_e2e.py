"""The whole loop through the emulator: API submit -> cycle -> Kubernetes Job -> reconcile,
with preemption of borrowed work and backfill before a booking."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from scheduler import states
from scheduler.models import Job, Node, TeamPolicy, TeamQuota
from scheduler.services.cycle import run_cycle
from scheduler.services.reconcile import reconcile
from scheduler.services.reservations import reserve_gpus
from tests.scheduler.cluster.conftest import ONE_NODE

pytestmark = pytest.mark.django_db

SIM = "karimasu.io/sim-duration-seconds"


def submit(persona, team="vision", gpus=1, runtime=3600, duration=30, **extra):
    response = persona.client().post(
        "/api/v1/jobs/",
        {
            "name": "train",
            "team": team,
            "image": "pytorch/pytorch:2.4",
            "gpus": gpus,
            "max_runtime_s": runtime,
            "annotations": {SIM: str(duration)},
            **extra,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return Job.objects.get(pk=response.json()["id"])


def test_submit_runs_and_finishes(alice, synced, backend, emulator):
    job = submit(alice, gpus=2, duration=30)
    report = run_cycle(backend, now=timezone.now())
    assert report.admitted == [job.pk]
    job.refresh_from_db()
    assert job.status == states.STARTING
    assert len(job.gpu_indices) == 2 and job.node is not None

    emulator.settle()
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.RUNNING
    detail = alice.client().get(f"/api/v1/jobs/{job.pk}/").json()
    assert detail["node"] == job.node.name

    emulator.advance(31)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.exit_code) == (states.SUCCEEDED, 0)


def test_waiting_jobs_get_a_reason_a_position_and_an_eta(alice, bob, synced, backend):
    for _ in range(3):
        submit(alice, gpus=2, runtime=3600)
    now = timezone.now()
    # 3 x 2 GPUs are full: tesla-04 has one left, the other holds another team's notebook
    assert len(run_cycle(backend, now=now).admitted) == 3
    waiting = [submit(bob, gpus=2, runtime=600) for _ in range(2)]
    run_cycle(backend, now=now)
    first, second = (Job.objects.get(pk=j.pk) for j in waiting)
    assert first.status == second.status == states.QUEUED
    assert (first.queue_position, second.queue_position) == (1, 2)
    assert first.reason == "capacity" and second.reason == "behind"
    # The first can start when the first running job's max runtime ends.
    assert first.eta is not None and now + timedelta(minutes=59) <= first.eta
    listed = bob.client().get("/api/v1/jobs/?status=queued").json()["results"]
    assert {j["reason"] for j in listed} == {"capacity", "behind"}


def test_borrowed_work_is_preempted_when_the_lender_wants_its_gpus(
    alice, charlie, synced, backend, emulator, nlp
):
    TeamQuota.objects.create(team=nlp, guaranteed_gpus=7)  # of 8, one held outside Karimasu
    borrowers = [submit(alice, gpus=2, duration=3600) for _ in range(3)]
    now = timezone.now()
    run_cycle(backend, now=now)
    assert all(Job.objects.get(pk=j.pk).borrowed for j in borrowers)

    lender = submit(charlie, team="nlp", gpus=2, duration=60)
    report = run_cycle(backend, now=now + timedelta(seconds=10))
    assert len(report.preempted) == 1
    victim = Job.objects.get(pk=report.preempted[0])
    assert victim.status == states.PREEMPTED and victim.terminating_until is not None
    assert Job.objects.get(pk=lender.pk).status == states.QUEUED  # until the grace ends

    later = victim.terminating_until + timedelta(seconds=1)
    report = run_cycle(backend, now=later)
    victim.refresh_from_db()
    assert (victim.status, victim.attempt) == (states.QUEUED, 2)
    assert report.admitted == [lender.pk]


@pytest.mark.nodes_file(ONE_NODE)
def test_backfill_runs_only_what_ends_before_a_booking(alice, charlie, synced, backend, nlp):
    TeamPolicy.objects.create(
        team=nlp, max_booking_hours=None, max_days_ahead=None, max_gpus_per_user=None
    )
    now = timezone.now()
    reserve_gpus(
        charlie.user,
        team=nlp,
        node=Node.objects.get(name="tesla-01"),
        gpu_indices=[0, 1],
        start=now + timedelta(hours=2),
        end=now + timedelta(hours=4),
        now=now,
    )
    long_job = submit(alice, gpus=2, runtime=3 * 3600)
    short_job = submit(alice, gpus=2, runtime=3600)
    report = run_cycle(backend, now=now)
    assert report.admitted == [short_job.pk]
    long_job.refresh_from_db()
    assert long_job.status == states.QUEUED
    assert long_job.reason in ("reserved", "capacity")
    assert long_job.eta is not None and long_job.eta >= now + timedelta(hours=4)


@pytest.mark.nodes_file(ONE_NODE)
def test_gpus_busy_with_foreign_processes_are_not_placed_on(alice, synced, backend):
    from scheduler.telemetry.models import GpuState

    gpu = Node.objects.get(name="tesla-01").gpus.get(index=0)
    GpuState.objects.create(gpu=gpu, at=timezone.now(), utilization=95, foreign_processes=1)
    two = submit(alice, gpus=2)
    one = submit(alice, gpus=1)
    run_cycle(backend, now=timezone.now())
    two.refresh_from_db()
    one.refresh_from_db()
    assert two.status == states.QUEUED
    assert (one.status, one.gpu_indices) == (states.STARTING, [1])


def test_the_celery_task_drives_a_cycle_against_the_configured_cluster(
    alice, synced, emulator, settings
):
    from scheduler.tasks import schedule_cycle

    settings.KUBECONFIG = str(emulator.kubeconfig_path)
    job = submit(alice, gpus=1)
    result = schedule_cycle()
    assert result["admitted"] == [job.pk]
    job.refresh_from_db()
    assert job.status == states.STARTING  # created on the emulated cluster


@pytest.mark.django_db(transaction=True)
def test_cycles_never_overlap(alice, synced, backend):
    """While another cycle holds the lock, a cycle skips (PostgreSQL advisory lock); on
    SQLite writers are serialized by IMMEDIATE transactions and the cycle simply runs."""
    from django.db import connection, connections

    from scheduler.models import PriorityClass
    from scheduler.services.cycle import LOCK_KEY

    # A transactional test may run after another one flushed the migrations' default rows.
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    job = submit(alice, gpus=1)
    if connection.vendor != "postgresql":
        assert run_cycle(backend, now=timezone.now()).admitted == [job.pk]
        return
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        assert run_cycle(backend, now=timezone.now()).skipped
        assert Job.objects.get(pk=job.pk).status == states.QUEUED
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
        assert run_cycle(backend, now=timezone.now()).admitted == [job.pk]
    finally:
        other.close()
