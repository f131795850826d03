"""Issue #12 item 1: a reading dated far ahead (or far back) must be refused, not stored.

A reading at `9999-12-31T23:59:59-14:00` is year 10000 in UTC: stored, psycopg could not read
it back and every page listing GPUs answered 500. Readings years ahead froze `GpuState`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.telemetry.models import GpuMinute, GpuSample, GpuState, NodeAgentState
from tests.conftest import assert_error
from tests.scheduler.telemetry.conftest import NOW, T0, batch, gpu_data, reading

URL = "/api/v1/telemetry/"


def post(client, body):
    return client.post(URL, body, format="json")


@pytest.mark.parametrize(
    "at",
    [
        pytest.param("9999-12-31T23:59:59-14:00", id="year-10000-in-utc"),
        pytest.param("9999-12-31T23:59:59Z", id="year-9999"),
        pytest.param((NOW + timedelta(days=3 * 365)).isoformat(), id="years-ahead"),
        pytest.param((NOW + timedelta(minutes=10)).isoformat(), id="ten-minutes-ahead"),
        pytest.param((NOW - timedelta(days=91)).isoformat(), id="older-than-retention"),
        pytest.param("0001-01-01T00:00:00+14:00", id="year-0-in-utc"),
    ],
)
def test_reading_outside_the_window_is_refused_naming_the_field(agent_client, bob, at):
    good = reading(T0, [gpu_data(0)])
    response = post(agent_client, batch([good, {**good, "at": at}]))
    error = assert_error(response, 400, "invalid")
    assert "readings[1].at" in error["details"], error
    assert GpuSample.objects.count() == 0 and GpuState.objects.count() == 0
    assert GpuMinute.objects.count() == 0 and NodeAgentState.objects.count() == 0
    # Nothing stored can break a read: the pages and the node's next post still work.
    assert bob.client().get("/api/v1/nodes/").status_code == 200
    assert bob.client().get("/api/v1/telemetry/gpus/").status_code == 200
    assert post(agent_client, batch([good])).status_code == 202


def test_reading_a_few_minutes_ahead_is_accepted(agent_client, settings):
    settings.KARIMASU_TELEMETRY_MAX_CLOCK_SKEW_SECONDS = 300
    ahead = NOW + timedelta(minutes=4)
    assert post(agent_client, batch([reading(ahead, [gpu_data(0)])])).status_code == 202
    assert GpuState.objects.get(gpu__index=0).at == ahead
    # A later (in real time) reading is not frozen out by the skewed one for long: it is the
    # newest once the clock passes it, and nothing ahead of the window was ever stored.
    too_far = NOW + timedelta(minutes=6)
    assert_error(post(agent_client, batch([reading(too_far, [gpu_data(0)])])), 400, "invalid")


def test_window_follows_the_retention_setting(agent_client, settings):
    settings.KARIMASU_TELEMETRY_ROLLUP_RETENTION_DAYS = 1
    old = reading(NOW - timedelta(days=2), [gpu_data(0)])
    assert_error(post(agent_client, batch([old])), 400, "invalid")
    settings.KARIMASU_TELEMETRY_ROLLUP_RETENTION_DAYS = 3
    assert post(agent_client, batch([old])).status_code == 202


def test_migration_purges_rows_stored_ahead_before_the_fix(node):
    import importlib
    from datetime import UTC, datetime

    from django.apps import apps

    purge = importlib.import_module(
        "scheduler.telemetry.migrations.0002_purge_readings_ahead"
    ).purge_readings_ahead
    from scheduler.models import Gpu

    gpu = Gpu.objects.get(node=node, index=0)
    ahead = datetime(9999, 12, 31, tzinfo=UTC)
    GpuSample.objects.create(gpu=gpu, at=ahead, healthy=True)
    GpuSample.objects.create(gpu=gpu, at=T0, healthy=True)
    GpuState.objects.create(gpu=gpu, at=ahead, healthy=True)
    purge(apps, None)
    assert list(GpuSample.objects.values_list("at", flat=True)) == [T0]
    assert not GpuState.objects.exists()
