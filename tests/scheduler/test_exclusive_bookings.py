"""A booking's GPUs serve only its holder unless the holder shares them with the team
(issue 16: bob borrowed tesla-01 GPU 0; alice's job landed on it while GPUs were free
elsewhere)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from scheduler.core import plan_cycle
from scheduler.models import Job
from scheduler.services.snapshot import build_snapshot
from tests.scheduler.test_jobs_api import submit
from tests.scheduler.test_reservations import book

pytestmark = pytest.mark.django_db


def _placements(now) -> dict[int, tuple[str, tuple[int, ...]]]:
    result = plan_cycle(build_snapshot(now=now))
    return {int(a.job_id): (a.node, a.gpu_indices) for a in result.admitted}


def _bob_books(bob, node: str, gpus: list[int], shared: bool | None):
    now = timezone.now()
    body = {
        "team": "vision",
        "node": node,
        "gpus": gpus,
        "start": now.isoformat(),
        "end": (now + timedelta(hours=4)).isoformat(),
    }
    if shared is not None:
        body["shared_with_team"] = shared
    response = bob.client().post("/api/v1/reservations/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize("shared", [False, True])
def test_a_teammates_job_uses_a_booking_only_when_it_is_shared(
    alice, bob, nodes, unlimited, shared
) -> None:
    # bob holds every V100 (tesla-01 and tesla-02); alice asks for two V100s.
    for node in ("tesla-01", "tesla-02"):
        assert _bob_books(bob, node, [0, 1], shared)["shared_with_team"] is shared
    job = submit(alice, gpus=2, gpu_models=["Tesla-V100-SXM2-16GB"]).json()["id"]
    placed = _placements(timezone.now())
    assert (job in placed) is shared
    if shared:
        assert placed[job][0] in ("tesla-01", "tesla-02")


def test_the_holders_own_job_uses_the_booking(bob, nodes, unlimited) -> None:
    assert _bob_books(bob, "a100-01", [0, 1, 2, 3], None)["shared_with_team"] is False
    job = submit(bob, gpus=4).json()["id"]
    assert _placements(timezone.now())[job][0] == "a100-01"
    assert Job.objects.get(pk=job).owner == bob.user


def test_a_borrow_is_exclusive_unless_asked(alice, nodes, unlimited) -> None:
    response = alice.client().post(
        "/api/v1/reservations/borrow/",
        {"team": "vision", "gpus": 1, "hours": 1, "shared_with_team": True},
        format="json",
    )
    assert response.status_code == 201 and response.json()["shared_with_team"] is True
    plain = book(alice, node="a100-01", start=1, end=2)
    assert plain.status_code == 201, plain.content
    assert plain.json()["shared_with_team"] is False
