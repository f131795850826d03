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
