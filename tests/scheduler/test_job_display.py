"""Jobs' states drawn by meaning, human reasons and humanised durations (issue 18 item 5)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import translation

from scheduler import job_display
from scheduler.cluster.mapping import WAITING_REASONS
from scheduler.templatetags.karimasu_ui import duration


@pytest.mark.parametrize(
    ("value", "english", "japanese"),
    [
        (14400, "4 h", "4時間"),
        (4800, "1 h 20 min", "1時間20分"),
        (45, "45 s", "45秒"),
        (1200, "20 min", "20分"),
        (timedelta(days=2, hours=3), "2 d 3 h", "2日3時間"),
        (7 * 24 * 3600, "7 d", "7日"),
        (None, "", ""),
    ],
)
def test_durations_read_as_people_say_them(value, english, japanese) -> None:
    with translation.override("en"):
        assert duration(value) == english
    with translation.override("ja"):
        assert duration(value) == japanese


def _job(status: str, reason: str = "", message: str = "") -> SimpleNamespace:
    return SimpleNamespace(status=status, reason=reason, message=message)


def test_a_job_that_cannot_pull_its_image_is_a_warning_not_a_start() -> None:
    healthy = job_display.job_state(_job("starting", "starting"))
    failing = job_display.job_state(
        _job("starting", "image_pull_failure", "Back-off pulling image (ImagePullBackOff)")
    )
    assert healthy["tone"] == "info" and not healthy["problem"]
    assert failing["tone"] == "warn" and failing["problem"]
    assert failing["text"].startswith("The image cannot be pulled")
    assert failing["raw"] == "Back-off pulling image (ImagePullBackOff)"


@pytest.mark.parametrize(
    ("status", "reason", "tone"),
    [
        ("failed", "invalid_image", "error"),
        ("timed_out", "deadline_exceeded", "error"),
        ("succeeded", "", "ok"),
        ("queued", "capacity", "wait"),
        ("queued", "too-big", "warn"),
        ("running", "crash_loop", "warn"),
        ("queued", "requeued_after_start_timeout", "warn"),
        ("running", "", "info"),
        ("cancelled", "cancelled", "muted"),
    ],
)
def test_tones_by_meaning(status, reason, tone) -> None:
    assert job_display.tone(status, reason) == tone


def test_every_cluster_reason_has_a_human_message() -> None:
    for code, _explain in WAITING_REASONS.values():
        assert code in job_display.REASON_TEXT, code
    with translation.override("ja"):
        assert job_display.reason_text("image_pull_failure").startswith("イメージを取得できません")


@pytest.mark.django_db
def test_the_job_page_draws_the_jobs_gpu_utilization(alice, nodes, monkeypatch) -> None:
    from django.test import Client
    from django.utils import timezone

    from scheduler import tasks
    from scheduler.models import Gpu, Job
    from scheduler.services import submission
    from scheduler.telemetry.models import GpuMinute, JobUtilization

    monkeypatch.setattr(tasks.schedule_cycle, "delay", lambda: None)
    request = submission.JobRequest(
        name="resnet", image="pytorch/pytorch:2.4", team="vision", max_runtime_s=4800
    )
    job = submission.submit_job(alice.user, request, now=timezone.now())
    client = Client()
    client.force_login(alice.user)
    assert "No GPU readings for this job yet." in client.get(f"/jobs/{job.pk}/").content.decode()

    Job.objects.filter(pk=job.pk).update(status="running", started_at=timezone.now())
    gpu = Gpu.objects.filter(node=nodes["tesla-01"]).first()
    start = timezone.now().replace(second=0, microsecond=0)
    for minute, percent in enumerate([90.0, 80.0, 10.0]):
        GpuMinute.objects.create(
            gpu=gpu,
            job=job,
            minute=start - timedelta(minutes=3 - minute),
            samples=4,
            utilization_samples=4,
            utilization_sum=4 * percent,
        )
    histogram = [0] * 101
    histogram[90], histogram[80], histogram[10] = 4, 4, 4
    JobUtilization.objects.create(
        job=job,
        samples=12,
        utilization_sum=720.0,
        utilization_samples=12,
        idle_samples=0,
        gpu_seconds=180.0,
        histogram=histogram,
    )
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert '<polyline points="0,10.0 1,20.0 2,90.0"/>' in html
    assert "Mean 60%" in html and "latest 10%" in html
    assert "1 h 20 min" in html  # the longest runtime, humanised
