"""Time-series endpoints and the GPU overview, with the personas' permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import assert_error
from tests.scheduler.telemetry.conftest import T0, batch, gpu_data, reading

UUID0 = "GPU-00000000-aaaa-bbbb-cccc-000000000000"


@pytest.fixture
def two_minutes_of_readings(agent_client, make_job):
    """GPU 0 held by alice's job: 12:00 at 10..60 %, 12:01 at 90 % (6 readings a minute)."""
    job = make_job(indices=(0,))
    readings = [
        reading(
            T0 + timedelta(seconds=10 * i),
            [gpu_data(0, util=10.0 * (i + 1) if i < 6 else 90.0), gpu_data(1, util=0.0)],
        )
        for i in range(12)
    ]
    assert (
        agent_client.post("/api/v1/telemetry/", batch(readings), format="json").status_code == 202
    )
    return job


def series_url(**params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/v1/gpus/{UUID0}/utilization/?{query}"


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_gpu_series_per_minute_from_rollups(two_minutes_of_readings, charlie):
    response = charlie.client().get(
        series_url(**{"from": iso(T0), "to": iso(T0 + timedelta(minutes=2))})
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["gpu"] == {"uuid": UUID0, "node": "gpu-01", "index": 0} and body["step"] == 60
    points = [
        (p["t"], p["utilization"], p["utilization_max"], p["samples"]) for p in body["points"]
    ]
    assert points == [
        ("2026-11-23T12:00:00Z", 35.0, 60.0, 6),
        ("2026-11-23T12:01:00Z", 90.0, 90.0, 6),
    ]


def test_gpu_series_two_minute_step_merges_rollups(two_minutes_of_readings, bob):
    url = series_url(**{"from": iso(T0), "to": iso(T0 + timedelta(minutes=2)), "step": 120})
    (point,) = bob.client().get(url).json()["points"]
    assert point["utilization"] == pytest.approx(62.5) and point["samples"] == 12


def test_gpu_series_sub_minute_step_reads_raw_samples(two_minutes_of_readings, bob):
    url = series_url(**{"from": iso(T0), "to": iso(T0 + timedelta(seconds=30)), "step": 15})
    points = bob.client().get(url).json()["points"]
    assert [(p["utilization"], p["samples"]) for p in points] == [(15.0, 2), (30.0, 1)]


@pytest.mark.parametrize(
    ("params", "want_key"),
    [
        pytest.param({"step": 0}, "step", id="zero-step"),
        pytest.param({"step": "abc"}, "step", id="text-step"),
        pytest.param(
            {"from": "2026-11-23T13:00:00Z", "to": "2026-11-23T12:00:00Z"}, "from", id="backwards"
        ),
        pytest.param(
            {"from": "2026-01-01T00:00:00Z", "to": "2026-11-23T12:00:00Z", "step": 60},
            "step",
            id="too-many-points",
        ),
        pytest.param({"from": "noon"}, "from", id="bad-time"),
    ],
)
def test_gpu_series_bad_parameters(two_minutes_of_readings, bob, params, want_key):
    error = assert_error(bob.client().get(series_url(**params)), 400, "invalid")
    assert want_key in error["details"]


def test_gpu_series_needs_sign_in_and_a_known_uuid(two_minutes_of_readings, anonymous, bob):
    assert_error(anonymous.get(series_url()), 401)
    assert_error(bob.client().get("/api/v1/gpus/GPU-nope/utilization/"), 404, "not_found")


def test_job_utilization_for_owner_team_and_staff(two_minutes_of_readings, alice, bob, admin):
    url = f"/api/v1/jobs/{two_minutes_of_readings.pk}/utilization/"
    for persona in (alice, bob, admin):
        body = persona.client().get(url).json()
        assert body["summary"]["samples"] == 12
        assert body["summary"]["utilization_mean"] == pytest.approx(62.5)
        assert body["summary"]["utilization_p95"] == 90.0
        assert [(p["t"], p["utilization"], p["gpus"]) for p in body["points"]] == [
            ("2026-11-23T12:00:00Z", 35.0, 1),
            ("2026-11-23T12:01:00Z", 90.0, 1),
        ]


def test_job_utilization_hidden_from_outsiders(two_minutes_of_readings, charlie, anonymous):
    url = f"/api/v1/jobs/{two_minutes_of_readings.pk}/utilization/"
    assert_error(charlie.client().get(url), 404, "not_found")
    assert_error(anonymous.get(url), 401)
    assert_error(charlie.client().get("/api/v1/jobs/999999/utilization/"), 404)


def test_job_without_samples_has_no_summary(make_job, alice):
    job = make_job(status="queued", indices=())
    body = alice.client().get(f"/api/v1/jobs/{job.pk}/utilization/").json()
    assert body == {"job": job.pk, "summary": None, "points": []}


def test_gpu_overview_shows_latest_reading(
    two_minutes_of_readings, bob, django_assert_max_num_queries
):
    with django_assert_max_num_queries(6):
        body = bob.client().get("/api/v1/telemetry/gpus/").json()
    assert body["count"] == 2
    gpu0, gpu1 = body["results"]
    assert (gpu0["node"], gpu0["index"], gpu0["uuid"]) == ("gpu-01", 0, UUID0)
    assert gpu0["utilization"] == 90.0 and gpu0["job"] == two_minutes_of_readings.pk
    assert gpu0["healthy"] is True and gpu0["sample_age_s"] > 0
    assert gpu1["utilization"] == 0.0 and gpu1["job"] is None
