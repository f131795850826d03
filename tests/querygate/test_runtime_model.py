"""The runtime prediction learned from a warehouse's estimate-vs-actual history, with its
error measured on held-out history against the old seconds-per-byte rule."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from querygate.analysis.runtime_model import fit
from querygate.models import Query, QueryStatus
from querygate.services.analyses import predicted_runtime_s, runtime_model

URL = "/api/v1/queries/analyze/"


def _history(n: int, seed: int = 7) -> list[tuple[int, float]]:
    """Runtimes with a fixed cost and sub-linear growth (as real engines have), 10 % noise."""
    rng = random.Random(seed)
    points = []
    for _ in range(n):
        size = int(10 ** rng.uniform(3, 10))
        seconds = (0.05 + 2e-4 * size**0.6) * rng.uniform(0.9, 1.1)
        points.append((size, seconds))
    return points


def test_too_little_history_predicts_nothing():
    assert fit(_history(4)) is None
    small = fit(_history(6))
    assert small is not None and small.holdout_error is None  # too few to hold any out


def test_the_learned_model_beats_the_seconds_per_byte_rule_on_held_out_history():
    model = fit(_history(200))
    assert model is not None and model.samples == 200
    assert model.holdout_error is not None and model.baseline_error is not None
    assert model.holdout_error < 0.35
    assert model.holdout_error < model.baseline_error / 2
    assert 0.3 < model.slope < 0.8
    truth = 0.05 + 2e-4 * (10**8) ** 0.6
    assert model.predict(10**8) == pytest.approx(truth, rel=0.5)


def test_bad_points_are_ignored():
    model = fit([(0, 1.0), (-5, 2.0), (100, -1.0), *_history(10)])
    assert model is not None and model.samples == 10


def test_the_gate_reports_the_prediction_and_its_error(demo, bob) -> None:
    now = timezone.now()
    for i, (size, seconds) in enumerate(_history(30)):
        start = now - timedelta(hours=30 - i)
        Query.objects.create(
            user=bob.user,
            warehouse=demo,
            sql="SELECT 1",
            status=QueryStatus.SUCCEEDED,
            created_at=start,
            bytes_estimate=size,
            started_at=start,
            finished_at=start + timedelta(seconds=seconds),
        )
    model = runtime_model(demo)
    assert model is not None and model.samples == 30
    assert predicted_runtime_s(demo, 10**6) == round(model.predict(10**6), 3)
    response = bob.client().post(
        URL, {"warehouse": "demo", "sql": "SELECT n_name FROM nation"}, format="json"
    )
    assert response.status_code == 200, response.content
    estimate = response.json()["estimate"]
    assert estimate["runtime_s"] is not None and "history" in estimate["source"]
    assert estimate["runtime_model"]["samples"] == 30
    assert estimate["runtime_model"]["holdout_error"] is not None
