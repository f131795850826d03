"""The team page (``/teams/<slug>/``, ``/team/``) and the job page's efficiency card."""

from __future__ import annotations

import pytest
from django.test import Client

from scheduler.models import TeamPolicy

from .test_team_usage import last_week  # noqa: F401  (the seeded week, a fixture)

pytestmark = pytest.mark.django_db


def _client(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_the_team_page_shows_quota_budget_weeks_and_efficiency(bob, vision, last_week) -> None:  # noqa: F811
    TeamPolicy.objects.update_or_create(team=vision, defaults={"weekly_gpu_hours": 100})
    assert _client(bob).get("/team/")["Location"] == "/teams/vision/"
    page = _client(bob).get("/teams/vision/").content.decode()
    assert 'id="usage-chart-data"' in page and "vendor/chartjs/charts.min.js" in page
    assert "<td>2.0</td><td>1.0</td><td>1.0 (50%)</td><td>1.0</td><td>0.8</td>" in page
    assert "of 100 GPU-hours used" in page
    assert f"resnet #{last_week['job'].pk}" in page  # the efficiency table
    assert "12000 / 16384 MiB" in page
    assert 'data-table="waste"' not in page  # bob leads no team


def test_leads_see_every_teams_waste_and_strangers_nothing(alice, charlie, last_week) -> None:  # noqa: F811
    page = _client(alice).get("/teams/vision/").content.decode()
    assert 'data-table="waste"' in page
    assert _client(charlie).get("/teams/vision/").status_code == 404
    assert _client(charlie).get("/teams/nope/").status_code == 404


def test_the_job_page_shows_its_efficiency(bob, last_week) -> None:  # noqa: F811
    job = last_week["job"]
    page = _client(bob).get(f"/jobs/{job.pk}/").content.decode()
    assert f'data-efficiency="{job.pk}"' in page
    assert "60.2%" in page and "12000 / 16384 MiB" in page and "4000m" in page


def test_the_team_page_speaks_japanese(bob, vision, last_week) -> None:  # noqa: F811
    bob.user.language = "ja"
    bob.user.save()
    page = _client(bob).get("/teams/vision/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "週ごとの予約と使用" in page


def test_the_team_page_refreshes_what_runs_waits_and_is_used(bob, vision, last_week) -> None:  # noqa: F811
    """Issue 18 item 2: the team page is live. ``?live=1`` answers its regions; a job that
    starts waiting shows up in the next poll, and the region's version changes with it."""
    from django.utils import timezone

    from scheduler import states
    from scheduler.models import Job

    client = _client(bob)
    page = client.get("/teams/vision/").content.decode()
    assert 'data-live="now"' in page and 'data-live="quota"' in page
    first = client.get("/teams/vision/?live=1").json()["regions"]
    assert set(first) == {"now", "quota"}
    assert "Nothing waits." in first["now"]["html"]
    job = Job.objects.create(
        name="fresh-sweep", owner=bob.user, team=vision, image="python:3.11", gpus=3,
        status=states.QUEUED, reason="capacity", submitted_at=timezone.now(), max_runtime_s=3600,
    )  # fmt: skip
    second = client.get("/teams/vision/?live=1").json()["regions"]
    assert f"fresh-sweep #{job.pk}" in second["now"]["html"] and "3 GPUs" in second["now"]["html"]
    assert second["now"]["v"] != first["now"]["v"]
    assert second["quota"]["v"] == first["quota"]["v"]  # nothing runs more: unchanged
