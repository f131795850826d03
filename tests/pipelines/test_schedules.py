"""Schedules: cron in UTC through Celery's crontab; a due pipeline starts one run per pass;
overlapping runs are skipped or queued by choice; a bad cron is a 400 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines import states
from pipelines.models import Pipeline, PipelineRun
from pipelines.services import runs, schedules
from tests.conftest import assert_error
from tests.pipelines.conftest import three_steps

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 1, 7, 2, 58, tzinfo=UTC)


def _scheduled(alice, overlap="skip"):
    return runs.save_pipeline(
        alice.user, team_slug="vision", name="nightly", definition=three_steps(),
        schedule="0 3 * * *", overlap=overlap, now=T0,
    )  # fmt: skip


def test_next_run_follows_the_cron(alice, demo, gpu_node):
    pipeline = _scheduled(alice)
    assert pipeline.next_run_at == datetime(2030, 1, 7, 3, 0, tzinfo=UTC)
    assert schedules.run_due(now=T0) == []  # not yet
    started = schedules.run_due(now=T0 + timedelta(minutes=2))
    run = PipelineRun.objects.get(pk=started[0])
    assert run.trigger == "schedule" and run.created_by == pipeline.owner
    pipeline.refresh_from_db()
    assert pipeline.next_run_at == datetime(2030, 1, 8, 3, 0, tzinfo=UTC)
    assert schedules.run_due(now=T0 + timedelta(minutes=3)) == []  # one run per due time


def test_missed_times_start_one_run_not_a_burst(alice, demo, gpu_node):
    _scheduled(alice)
    later = T0 + timedelta(days=5)
    assert len(schedules.run_due(now=later)) == 1
    assert Pipeline.objects.get().next_run_at == datetime(2030, 1, 12, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(("overlap", "runs_started"), [("skip", 1), ("queue", 2)])
def test_overlapping_runs_are_skipped_or_queued(alice, demo, gpu_node, overlap, runs_started):
    _scheduled(alice, overlap)
    schedules.run_due(now=T0 + timedelta(minutes=2))
    assert PipelineRun.objects.get().status == states.RUNNING  # still running next night
    schedules.run_due(now=T0 + timedelta(days=1, minutes=2))
    assert PipelineRun.objects.count() == runs_started


def test_a_disabled_pipeline_does_not_run(alice, demo, gpu_node):
    pipeline = _scheduled(alice)
    Pipeline.objects.filter(pk=pipeline.pk).update(enabled=False)
    assert schedules.run_due(now=T0 + timedelta(days=1)) == []


@pytest.mark.parametrize("cron", ["0 3 * *", "61 3 * * *", "0 3 31 2 *", "x y z w v"])
def test_a_bad_schedule_is_a_400(alice, demo, cron):
    response = alice.client().post(
        "/api/v1/pipelines/",
        {"name": "p", "team": "vision", "definition": three_steps(), "schedule": cron},
        format="json",
    )
    error = assert_error(response, 400)
    assert "schedule" in error["details"]
