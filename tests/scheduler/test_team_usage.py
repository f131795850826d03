"""The team view's numbers (``/api/v1/teams/{slug}/usage/``, ``/api/v1/usage/waste/``,
``/api/v1/jobs/{id}/efficiency/``) computed from seeded telemetry: the arithmetic of booked,
busy and wasted GPU-hours and of a job's ``seff``-like efficiency."""

from __future__ import annotations

from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from scheduler import states
from scheduler.models import (
    Gpu,
    Job,
    QueueOrder,
    Reservation,
    ReservationSlot,
    TeamPolicy,
    TeamQuota,
)
from scheduler.services.booking_policy import week_bounds
from scheduler.telemetry.models import GpuMinute, JobUtilization
from tests.conftest import assert_error

from .conftest import make_node

pytestmark = pytest.mark.django_db


def _minutes(gpu, start, count, utilization, job=None):
    """``count`` one-minute rollups from ``start``, each of 4 samples at ``utilization``
    percent (None: the agent sent no utilization)."""
    GpuMinute.objects.bulk_create(
        GpuMinute(
            gpu=gpu,
            minute=start + timedelta(minutes=i),
            job=job,
            samples=4,
            utilization_samples=0 if utilization is None else 4,
            utilization_sum=0.0 if utilization is None else 4 * utilization,
        )
        for i in range(count)
    )


@pytest.fixture
def last_week(alice, bob, vision, settings):
    """Last week in vision: bob booked GPU 0 of tesla-01 for 2 h (60 min busy at 50 %, 30
    min idle at 2 %, 30 min without readings) and ran a 1-GPU job for 1 h on GPU 1 (45 min
    busy at 80 %, 15 min idle at 1 %)."""
    settings.KARIMASU_IDLE_THRESHOLD_PERCENT = 5
    node = make_node("tesla-01")
    gpu0, gpu1 = Gpu.objects.filter(node=node).order_by("index")
    now = timezone.now()
    start, _ = week_bounds(now - timedelta(days=7), ZoneInfo("UTC"))
    at = start + timedelta(days=2, hours=10)
    booking = Reservation.objects.create(
        holder=bob.user, team=vision, node=node, start=at, end=at + timedelta(hours=2),
        status="expired", purpose="bert", created_at=at - timedelta(days=1),
    )  # fmt: skip
    ReservationSlot.objects.create(
        reservation=booking, gpu=gpu0, start=booking.start, end=booking.end, active=False
    )
    _minutes(gpu0, at, 60, 50.0)
    _minutes(gpu0, at + timedelta(minutes=60), 30, 2.0)
    _minutes(gpu0, at + timedelta(minutes=90), 30, None)
    _minutes(gpu0, at + timedelta(minutes=120), 30, 90.0)  # after the booking: not counted
    job_at = start + timedelta(days=3)
    job = Job.objects.create(
        name="resnet", owner=bob.user, team=vision, image="pytorch/pytorch:2.4", gpus=1,
        max_runtime_s=7200, status=states.SUCCEEDED, node=node, gpu_indices=[1],
        submitted_at=job_at, admitted_at=job_at, started_at=job_at,
        finished_at=job_at + timedelta(hours=1), cpu_millis=4000, memory_mb=16384,
    )  # fmt: skip
    _minutes(gpu1, job_at, 45, 80.0, job=job)
    _minutes(gpu1, job_at + timedelta(minutes=45), 15, 1.0, job=job)
    JobUtilization.objects.create(
        job=job, samples=240, utilization_sum=180 * 80.0 + 60 * 1.0, utilization_samples=240,
        memory_samples=240, memory_used_sum=240 * 9000.0, memory_used_max=12000.0,
        idle_samples=60, gpu_seconds=3600.0,
    )  # fmt: skip
    return {"start": start, "job": job}


def test_booked_busy_and_wasted_gpu_hours_per_week(bob, vision, last_week) -> None:
    data = bob.client().get("/api/v1/teams/vision/usage/?weeks=2").json()
    assert [w["week_start"] for w in data["weeks"]] == [
        last_week["start"].isoformat(),
        (last_week["start"] + timedelta(days=7)).isoformat(),
    ]
    week = data["weeks"][0]
    assert week["booked_gpu_hours"] == 2.0  # 1 GPU x 2 h
    assert week["busy_gpu_hours"] == 1.0  # 60 minutes at 50 % >= 5 %
    assert week["wasted_gpu_hours"] == 1.0  # 30 idle + 30 unreported minutes
    assert week["wasted_percent"] == 50.0
    assert week["job_gpu_hours"] == 1.0
    assert week["job_busy_gpu_hours"] == 0.75  # 45 of 60 minutes
    assert data["weeks"][1]["booked_gpu_hours"] == 0.0
    assert data["weeks"][1]["wasted_percent"] is None


def test_the_idle_threshold_decides_what_counts_as_busy(bob, last_week, settings) -> None:
    settings.KARIMASU_IDLE_THRESHOLD_PERCENT = 60
    week = bob.client().get("/api/v1/teams/vision/usage/?weeks=2").json()["weeks"][0]
    assert (week["busy_gpu_hours"], week["job_busy_gpu_hours"]) == (0.0, 0.75)


def test_quota_budget_running_and_waiting(alice, bob, vision, last_week) -> None:
    TeamQuota.objects.create(team=vision, guaranteed_gpus=4)
    TeamPolicy.objects.update_or_create(team=vision, defaults={"weekly_gpu_hours": 100})
    node = last_week["job"].node
    now = timezone.now()
    Job.objects.create(
        name="big", owner=alice.user, team=vision, image="x", gpus=2, max_runtime_s=3600,
        status=states.RUNNING, node=node, gpu_indices=[0, 1], submitted_at=now,
        admitted_at=now - timedelta(hours=1), started_at=now - timedelta(hours=1),
    )  # fmt: skip
    waits = Job.objects.create(
        name="waits", owner=bob.user, team=vision, image="x", gpus=8, max_runtime_s=3600,
        submitted_at=now, reason="quota_exhausted", message="vision uses its 4 GPUs",
    )  # fmt: skip
    QueueOrder.record(now, [waits.pk], [0])
    data = bob.client().get("/api/v1/teams/vision/usage/").json()
    assert data["quota"] == {
        "guaranteed_gpus": 4, "borrowing_allowed": True, "borrowing_limit": None,
        "gpus_in_use": 2,
    }  # fmt: skip
    # This week: the running job's 2 GPUs for the hour since it started (or since Monday).
    week_start = datetime_of(data["budget"]["week_start"])
    expected = 2 * min(1.0, (now - week_start).total_seconds() / 3600)
    assert data["budget"]["used_gpu_hours"] == pytest.approx(expected, abs=0.01)
    assert data["budget"]["left_gpu_hours"] == pytest.approx(100 - expected, abs=0.01)
    assert [j["name"] for j in data["running"]] == ["big"]
    (waiting,) = data["waiting"]
    assert (waiting["reason"], waiting["queue_position"]) == ("quota_exhausted", 1)


def datetime_of(text):
    from datetime import datetime

    return datetime.fromisoformat(text).astimezone(UTC)


def test_job_efficiency_like_seff(bob, last_week) -> None:
    job = last_week["job"]
    data = bob.client().get(f"/api/v1/jobs/{job.pk}/efficiency/").json()
    assert data["gpu_hours_held"] == 1.0
    assert data["gpu_hours_reported"] == 1.0
    assert data["gpu_hours_busy"] == 0.75
    assert data["gpu_utilization_mean"] == round((180 * 80 + 60) / 240, 1)  # 60.2
    assert data["idle_percent"] == 25.0
    assert data["gpu_memory_peak_mib"] == 12000.0
    assert data["gpu_memory_total_mib"] == 16384
    assert (data["cpu_millis_requested"], data["memory_mb_requested"]) == (4000, 16384)
    assert data["cpu_used"] is None  # not measured: the agents read GPUs only
    overview = bob.client().get("/api/v1/teams/vision/usage/").json()
    assert [e["job"] for e in overview["efficiency"]] == [job.pk]


def test_waste_of_every_team_is_for_leads_and_admins(alice, bob, charlie, admin, last_week):
    for persona in (alice, charlie, admin):  # charlie leads nlp: sees vision's waste too
        rows = persona.client().get("/api/v1/usage/waste/?weeks=2").json()["results"]
        vision = [r for r in rows if r["team"] == "vision"]
        assert vision[0]["wasted_gpu_hours"] == 1.0
        assert {r["team"] for r in rows} >= {"vision", "nlp"}
    assert_error(bob.client().get("/api/v1/usage/waste/"), 403, "permission_denied")
    for bad in ("0", "13", "x"):
        assert_error(alice.client().get(f"/api/v1/usage/waste/?weeks={bad}"), 400, "invalid")


def test_only_members_and_admins_see_a_teams_usage(bob, charlie, admin, last_week) -> None:
    assert admin.client().get("/api/v1/teams/vision/usage/").status_code == 200
    assert_error(charlie.client().get("/api/v1/teams/vision/usage/"), 403)
    assert_error(bob.client().get("/api/v1/teams/nope/usage/"), 404)
    job = last_week["job"]
    assert_error(charlie.client().get(f"/api/v1/jobs/{job.pk}/efficiency/"), 404)
