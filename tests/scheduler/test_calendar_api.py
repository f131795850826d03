"""``GET /api/v1/calendar/``: the bookings calendar's rows (GPUs) and blocks (bookings, jobs
holding GPUs, maintenance) over a rolling span of days, access-checked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from scheduler import states
from scheduler.models import Job, MaintenanceWindow
from scheduler.services import reservations
from tests.conftest import assert_error

from .conftest import make_node

pytestmark = pytest.mark.django_db


def _book(persona, team, node, indices, start, end, purpose=""):
    return reservations.reserve_gpus(
        persona.user, team=team, node=node, gpu_indices=indices, start=start, end=end,
        purpose=purpose, now=timezone.now(),
    )  # fmt: skip


def _running_job(owner, team, node, indices, *, hours=4):
    now = timezone.now()
    return Job.objects.create(
        name="resnet", owner=owner.user, team=team, image="pytorch/pytorch:2.4",
        gpus=len(indices), max_runtime_s=hours * 3600, status=states.RUNNING, node=node,
        gpu_indices=indices, submitted_at=now - timedelta(hours=1),
        admitted_at=now - timedelta(hours=1), started_at=now - timedelta(minutes=30),
    )  # fmt: skip


def test_rows_are_gpus_and_blocks_say_who_when_and_what(
    alice, bob, charlie, vision, nlp, unlimited
) -> None:
    node = make_node("tesla-01")
    make_node("tesla-02")
    now = timezone.now()
    tomorrow = now + timedelta(days=1)
    mine = _book(alice, vision, node, [0, 1], tomorrow, tomorrow + timedelta(hours=2), "bert")
    job = _running_job(charlie, nlp, node, [1], hours=4)  # on GPU 1 until tomorrow? no: 4 h
    MaintenanceWindow.objects.create(
        node=node, start=now + timedelta(days=3), end=now + timedelta(days=3, hours=1),
        reason="driver upgrade",
    )  # fmt: skip

    data = bob.client().get("/api/v1/calendar/").json()
    assert [g["id"] for g in data["groups"]] == [
        "tesla-01/0",
        "tesla-01/1",
        "tesla-02/0",
        "tesla-02/1",
    ]
    assert data["days"] == 7
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    assert data["start"] == start.isoformat()  # rolling from today, not Monday
    by_kind: dict[str, list[dict]] = {}
    for item in data["items"]:
        by_kind.setdefault(item["kind"], []).append(item)
    bookings = sorted(by_kind["team"], key=lambda i: i["group"])  # alice's, seen by bob
    assert [b["group"] for b in bookings] == ["tesla-01/0", "tesla-01/1"]
    assert bookings[0]["holder"] == "alice" and bookings[0]["gpus"] == [0, 1]
    assert bookings[0]["purpose"] == "bert" and bookings[0]["reservation"] == mine.pk
    (running,) = by_kind["job"]
    assert running["group"] == "tesla-01/1" and running["holder"] == "charlie"
    assert running["job"] is None and running["purpose"] == ""  # not bob's team's job
    assert running["end"] == (job.started_at + timedelta(hours=4)).isoformat()
    assert {m["group"] for m in by_kind["maintenance"]} == {"tesla-01/0", "tesla-01/1"}
    assert by_kind["maintenance"][0]["purpose"] == "driver upgrade"

    # Alice sees her own booking as hers; charlie sees his job with its name and not
    # vision's purpose.
    kinds = {i["kind"] for i in alice.client().get("/api/v1/calendar/").json()["items"]}
    assert "mine" in kinds and "team" not in kinds
    items = charlie.client().get("/api/v1/calendar/").json()["items"]
    assert {i["purpose"] for i in items if i["kind"] == "other"} == {""}
    assert [i["job"] for i in items if i["kind"] == "job"] == [job.pk]


def test_the_span_is_chosen_and_bad_spans_are_refused(alice, anonymous) -> None:
    make_node("tesla-01")
    today = timezone.localtime(timezone.now()).date()
    later = today + timedelta(days=10)
    data = alice.client().get(f"/api/v1/calendar/?from={later:%Y-%m-%d}&days=1").json()
    assert data["days"] == 1 and data["start"].startswith(f"{later:%Y-%m-%d}")
    for query in ("from=yesterday", "days=0", "days=32", "days=x", "from=1999-01-01"):
        body = assert_error(alice.client().get(f"/api/v1/calendar/?{query}"), 400, "invalid")
        assert "literal" not in str(body) and "isoformat" not in str(body)  # not Python's words
    assert_error(anonymous.get("/api/v1/calendar/"), 401)


def test_a_starting_job_is_drawn_from_its_admission(alice, vision) -> None:
    node = make_node("tesla-01")
    job = _running_job(alice, vision, node, [0])
    Job.objects.filter(pk=job.pk).update(status=states.STARTING, started_at=None)
    (item,) = alice.client().get("/api/v1/calendar/").json()["items"]
    assert item["kind"] == "starting" and item["job"] == job.pk and item["mine"] is True
