"""Booking GPUs through the API: conflicts, permissions, policies, release, borrow-now,
availability, calendar feeds and notices."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from scheduler.models import (
    Job,
    MaintenanceWindow,
    Reservation,
    ReservationSlot,
    ReservationStatus,
    TeamPolicy,
)
from scheduler.services.reservations import advance_reservations
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def at(hours: float):
    """A time `hours` from now, on the minute (booking forms work in minutes)."""
    return (timezone.now() + timedelta(hours=hours)).replace(second=0, microsecond=0)


def book(persona, node="tesla-01", gpus=(0,), start=1, end=3, team="vision", purpose="train"):
    return persona.client().post(
        "/api/v1/reservations/",
        {
            "team": team,
            "node": node,
            "gpus": list(gpus),
            "start": at(start).isoformat(),
            "end": at(end).isoformat(),
            "purpose": purpose,
        },
        format="json",
    )


# --- booking and conflicts --------------------------------------------------------------


def test_book_then_the_same_slot_is_409_with_who_holds_it(alice, bob, nodes, unlimited):
    first = book(alice, gpus=(0, 1))
    assert first.status_code == 201, first.content
    assert first.json()["gpus"] == [0, 1]
    assert first.json()["status"] == "booked"

    error = assert_error(book(bob, gpus=(1,)), 409, "conflict")
    [conflict] = error["details"]["conflicts"]
    assert conflict["holder"] == "alice" and conflict["gpus"] == [1]
    assert conflict["id"] == first.json()["id"]


@pytest.mark.parametrize(
    "start, end, want_status",
    [
        pytest.param(2, 4, 409, id="overlaps-the-end"),
        pytest.param(0.5, 1.5, 409, id="overlaps-the-start"),
        pytest.param(1.5, 2, 409, id="inside"),
        pytest.param(0.5, 5, 409, id="around"),
        pytest.param(3, 5, 201, id="starts-when-it-ends"),
        pytest.param(0.25, 1, 201, id="ends-when-it-starts"),
    ],
)
def test_overlap_is_half_open(alice, bob, nodes, unlimited, start, end, want_status):
    assert book(alice, start=1, end=3).status_code == 201
    assert book(bob, start=start, end=end).status_code == want_status


def test_other_gpus_of_the_same_node_stay_bookable(alice, bob, nodes, unlimited):
    assert book(alice, gpus=(0,)).status_code == 201
    assert book(bob, gpus=(1,)).status_code == 201


@pytest.mark.parametrize(
    "payload, want_field",
    [
        pytest.param({"gpus": []}, "gpus", id="no-gpus"),
        pytest.param({"gpus": [5]}, "gpus", id="gpu-not-on-node"),
        pytest.param({"node": "nope"}, "node", id="unknown-node"),
        pytest.param({"team": "nope"}, "team", id="unknown-team"),
        pytest.param({"start": "tomorrow"}, "start", id="bad-date"),
    ],
)
def test_bad_requests_name_the_field(alice, nodes, payload, want_field):
    body = {
        "team": "vision",
        "node": "tesla-01",
        "gpus": [0],
        "start": at(1).isoformat(),
        "end": at(2).isoformat(),
        **payload,
    }
    error = assert_error(alice.client().post("/api/v1/reservations/", body, format="json"), 400)
    assert want_field in error["details"]


def test_past_start_and_reversed_window_are_refused(alice, nodes):
    assert "start" in assert_error(book(alice, start=-2, end=1), 400)["details"]
    assert "end" in assert_error(book(alice, start=2, end=1), 400)["details"]


def test_a_start_a_moment_ago_means_now(alice, nodes):
    response = book(alice, start=-0.01, end=1)
    assert response.status_code == 201
    assert response.json()["status"] == "active"


# --- who may do what ---------------------------------------------------------------------


def test_outsider_cannot_book_for_a_team_they_are_not_in(charlie, nodes, vision):
    assert_error(book(charlie, team="vision"), 403, "permission_denied")


def test_everyone_sees_who_holds_what_but_purposes_stay_in_the_team(alice, bob, charlie, nodes):
    book(alice, purpose="secret project")
    [seen_by_outsider] = charlie.client().get("/api/v1/reservations/").json()["results"]
    assert seen_by_outsider["holder"] == "alice"
    assert seen_by_outsider["purpose"] is None
    assert seen_by_outsider["can_manage"] is False
    [seen_by_teammate] = bob.client().get("/api/v1/reservations/").json()["results"]
    assert seen_by_teammate["purpose"] == "secret project"


def test_only_holder_lead_and_admin_change_a_booking(alice, bob, charlie, admin, nodes):
    mine = book(bob).json()["id"]
    url = f"/api/v1/reservations/{mine}/"
    assert_error(charlie.client().patch(url, {"end": at(4).isoformat()}, format="json"), 403)
    assert_error(charlie.client().delete(url), 403)
    assert Reservation.objects.get(pk=mine).status == "booked"
    # alice leads bob's team; admins manage anything.
    assert alice.client().patch(url, {"end": at(4).isoformat()}, format="json").status_code == 200
    assert admin.client().patch(url, {"end": at(5).isoformat()}, format="json").status_code == 200
    assert bob.client().delete(url).status_code == 204


def test_member_cannot_change_a_teammates_booking(alice, bob, nodes):
    theirs = book(alice).json()["id"]
    assert_error(bob.client().delete(f"/api/v1/reservations/{theirs}/"), 403)


# --- policies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, request_kwargs, want_rule",
    [
        pytest.param(
            {"max_booking_hours": 2}, {"start": 1, "end": 4}, "max_booking_hours", id="too-long"
        ),
        pytest.param(
            {"max_days_ahead": 1}, {"start": 30, "end": 31}, "max_days_ahead", id="too-far-ahead"
        ),
        pytest.param(
            {"max_gpus_per_user": 1}, {"gpus": (0, 1)}, "max_gpus_per_user", id="too-many-gpus"
        ),
        pytest.param(
            {"weekly_gpu_hours": 1},
            {"gpus": (0, 1), "start": 1, "end": 2},
            "weekly_gpu_hours",
            id="over-the-weekly-budget",
        ),
    ],
)
def test_policy_refusals_name_the_rule(alice, nodes, vision, policy, request_kwargs, want_rule):
    TeamPolicy.objects.update_or_create(team=vision, defaults=policy)
    error = assert_error(book(alice, **request_kwargs), 403, "policy_violation")
    assert error["details"]["rule"] == want_rule
    assert not Reservation.objects.exists()


def test_gpus_per_user_counts_what_the_user_already_holds(alice, nodes, vision):
    TeamPolicy.objects.update_or_create(team=vision, defaults={"max_gpus_per_user": 2})
    assert book(alice, node="tesla-01", gpus=(0, 1)).status_code == 201
    error = assert_error(book(alice, node="tesla-02", gpus=(0,)), 403)
    assert error["details"]["held"] == 2
    # Not at the same time: fine.
    assert book(alice, node="tesla-02", gpus=(0,), start=4, end=5).status_code == 201


def test_jobs_share_the_weekly_budget_with_bookings(alice, nodes, vision):
    from datetime import UTC, datetime

    from scheduler.services.booking_policy import PolicyViolation
    from scheduler.services.reservations import reserve_gpus

    TeamPolicy.objects.update_or_create(
        team=vision, defaults={"weekly_gpu_hours": 10, "max_days_ahead": None}
    )
    # A Wednesday, so that every window below is inside one week whatever today is.
    now = datetime(2030, 1, 2, 12, tzinfo=UTC)
    Job.objects.create(
        name="big",
        owner=alice.user,
        team=vision,
        image="x",
        gpus=4,
        max_runtime_s=36000,
        status="succeeded",
        submitted_at=now,
        started_at=now - timedelta(hours=2),
        finished_at=now,
    )  # 8 GPU-hours

    def reserve(start_h: int, end_h: int):
        return reserve_gpus(
            alice.user,
            team=vision,
            node=nodes["tesla-01"],
            gpu_indices=[0],
            start=now + timedelta(hours=start_h),
            end=now + timedelta(hours=end_h),
            now=now,
        )

    reserve(1, 2)  # 9 of 10
    with pytest.raises(PolicyViolation) as refused:
        reserve(3, 5)
    assert refused.value.details["rule"] == "weekly_gpu_hours"


def test_no_booking_over_a_maintenance_window_or_a_cordoned_node(alice, nodes, unlimited):
    MaintenanceWindow.objects.create(
        node=nodes["tesla-01"], start=at(2), end=at(3), reason="driver upgrade"
    )
    error = assert_error(book(alice, node="tesla-01", start=1, end=4), 409)
    assert error["details"]["conflicts"][0]["kind"] == "maintenance"
    nodes["tesla-02"].cordoned = True
    nodes["tesla-02"].save()
    assert assert_error(book(alice, node="tesla-02"), 403)["details"]["rule"] == "cordoned"


def test_leads_set_their_teams_policy_members_only_read_it(alice, bob, charlie, nodes):
    url = "/api/v1/teams/vision/policy/"
    assert bob.client().get(url).json()["max_booking_hours"] == 72
    assert_error(bob.client().patch(url, {"max_booking_hours": 1}, format="json"), 403)
    assert_error(charlie.client().patch(url, {"max_booking_hours": 1}, format="json"), 403)
    changed = alice.client().patch(url, {"max_booking_hours": 8}, format="json")
    assert changed.json()["max_booking_hours"] == 8


# --- change, release, cancel ------------------------------------------------------------------


def test_extend_into_someone_elses_booking_is_409_shorten_is_fine(alice, bob, nodes, unlimited):
    mine = book(alice, start=1, end=3).json()["id"]
    book(bob, start=4, end=6)
    url = f"/api/v1/reservations/{mine}/"
    assert_error(alice.client().patch(url, {"end": at(5).isoformat()}, format="json"), 409)
    shorter = alice.client().patch(url, {"end": at(2).isoformat()}, format="json")
    assert shorter.status_code == 200
    assert ReservationSlot.objects.get(reservation_id=mine).end == at(2)


def test_release_early_frees_the_gpus_at_once(alice, bob, nodes, unlimited):
    mine = book(alice, start=0, end=5).json()["id"]
    released = alice.client().post(f"/api/v1/reservations/{mine}/release/").json()
    assert released["status"] == "released"
    assert book(bob, start=0.1, end=2).status_code == 201


def test_cancel_before_start_frees_the_slot_and_keeps_the_record(alice, bob, nodes, unlimited):
    mine = book(alice, start=2, end=4).json()["id"]
    assert alice.client().delete(f"/api/v1/reservations/{mine}/").status_code == 204
    assert Reservation.objects.get(pk=mine).status == "cancelled"
    assert book(bob, start=2, end=4).status_code == 201
    # Ending twice is not an error.
    assert alice.client().delete(f"/api/v1/reservations/{mine}/").status_code == 204


def test_states_advance_with_time(alice, nodes, unlimited):
    res = Reservation.objects.get(pk=book(alice, start=1, end=2).json()["id"])
    advance_reservations(now=res.start)
    res.refresh_from_db()
    assert res.status == ReservationStatus.ACTIVE
    advance_reservations(now=res.end)
    res.refresh_from_db()
    assert res.status == ReservationStatus.EXPIRED


# --- borrow now and availability --------------------------------------------------------------


def test_borrow_now_packs_onto_the_fullest_node_that_fits(alice, bob, nodes, unlimited):
    book(bob, node="tesla-01", gpus=(0,), start=0, end=8)  # tesla-01 has 1 free, tesla-02 2
    response = alice.client().post(
        "/api/v1/reservations/borrow/", {"team": "vision", "gpus": 1, "hours": 2}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["node"], response.json()["gpus"]) == ("tesla-01", [1])


def test_borrow_now_honours_the_model(alice, nodes, unlimited):
    response = alice.client().post(
        "/api/v1/reservations/borrow/",
        {"team": "vision", "gpus": 3, "hours": 1, "model": "NVIDIA-A100-SXM4-80GB"},
        format="json",
    )
    assert response.json()["node"] == "a100-01"
    assert response.json()["gpus"] == [0, 1, 2]


def test_borrow_now_when_nothing_is_free_says_when(alice, bob, nodes, unlimited):
    book(bob, node="a100-01", gpus=(0, 1, 2, 3), start=0, end=3)
    error = assert_error(
        alice.client().post(
            "/api/v1/reservations/borrow/", {"team": "vision", "gpus": 4, "hours": 1}, format="json"
        ),
        409,
        "no_capacity",
    )
    earliest = error["details"]["earliest"]
    assert earliest["node"] == "a100-01"
    assert earliest["start"].startswith(at(3).isoformat()[:16])


def test_availability_lists_the_gaps_around_a_booking(alice, bob, nodes, unlimited):
    book(bob, node="tesla-01", gpus=(0, 1), start=2, end=4)
    response = alice.client().get(
        "/api/v1/availability/",
        {
            "gpus": 2,
            "model": "Tesla-V100-SXM2-16GB",
            "from": at(1).isoformat(),
            "to": at(6).isoformat(),
        },
    )
    slots = [(s["node"], s["start"][:16], s["end"][:16]) for s in response.json()]
    iso = lambda h: at(h).isoformat()[:16]  # noqa: E731
    assert slots == [
        ("tesla-01", iso(1), iso(2)),
        ("tesla-01", iso(4), iso(6)),
        ("tesla-02", iso(1), iso(6)),
    ]


def test_availability_counts_gpus_held_by_running_jobs(alice, nodes, vision):
    now = timezone.now()
    Job.objects.create(
        name="run",
        owner=alice.user,
        team=vision,
        image="x",
        gpus=1,
        max_runtime_s=7200,
        status="running",
        node=nodes["tesla-02"],
        gpu_indices=[0],
        submitted_at=now,
        started_at=now,
    )
    response = alice.client().get(
        "/api/v1/availability/", {"gpus": 2, "from": at(0.5).isoformat(), "to": at(1).isoformat()}
    )
    assert "tesla-02" not in {s["node"] for s in response.json()}


def test_availability_validates_its_query(alice, nodes):
    assert_error(alice.client().get("/api/v1/availability/", {"gpus": 0}), 400)
    assert_error(
        alice.client().get(
            "/api/v1/availability/", {"from": at(5).isoformat(), "to": at(1).isoformat()}
        ),
        400,
    )


# --- calendar and notices ----------------------------------------------------------------------


def test_calendar_feed_for_user_and_team_and_rotation(alice, bob, nodes, unlimited):
    book(alice, purpose="fine-tune")
    feeds = alice.client().get("/api/v1/calendar-feeds/").json()
    user_feed = Client().get(feeds["user"].split("testserver")[1])
    assert user_feed["Content-Type"].startswith("text/calendar")
    body = user_feed.content.decode()
    assert "BEGIN:VEVENT" in body and "alice: 1 × Tesla-V100-SXM2-16GB on tesla-01" in body
    team_url = feeds["teams"][0]["url"].split("testserver")[1]
    assert "fine-tune" in Client().get(team_url).content.decode()

    alice.client().post("/api/v1/calendar-feeds/", {}, format="json")
    assert Client().get(feeds["user"].split("testserver")[1]).status_code == 404
    assert Client().get("/calendar/not-a-real-secret-at-all.ics").status_code == 404


def test_booking_notice_is_emailed_in_the_holders_language(
    bob, nodes, unlimited, eager_tasks, django_capture_on_commit_callbacks
):
    bob.user.language = "ja"
    bob.user.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert book(bob, gpus=(0, 1)).status_code == 201
    [message] = mail.outbox
    assert message.to == ["bob@example.com"]
    assert "bob が tesla-01 の Tesla-V100-SXM2-16GB × 2" in message.body


def test_team_webhook_gets_the_notice(
    alice, nodes, vision, unlimited, eager_tasks, django_capture_on_commit_callbacks, settings
):
    settings.KARIMASU_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # the receiver is on loopback
    received = []
    from tests.scheduler.webhook import webhook_receiver

    with webhook_receiver(received) as url:
        TeamPolicy.objects.filter(team=vision).update(slack_webhook_url=url)
        with django_capture_on_commit_callbacks(execute=True):
            book(alice, gpus=(1,))
    assert len(received) == 1
    assert received[0]["text"].startswith("alice booked 1 × Tesla-V100-SXM2-16GB on tesla-01")


def test_nodes_api_shows_the_booking_holding_a_gpu(alice, bob, nodes, unlimited):
    book(alice, node="tesla-02", gpus=(1,), start=0, end=2)
    node = bob.client().get("/api/v1/nodes/tesla-02/").json()
    held = {g["index"]: g["held_by"] for g in node["gpus"]}
    assert held[0] is None
    assert (held[1]["kind"], held[1]["user"], held[1]["team"]) == ("booking", "alice", "vision")


def test_nodes_api_carries_each_gpus_latest_telemetry(alice, nodes):
    from scheduler.telemetry.models import GpuState

    gpu = nodes["tesla-01"].gpus.get(index=1)
    GpuState.objects.create(
        gpu=gpu,
        at=timezone.now() - timedelta(seconds=30),
        utilization=87.5,
        memory_used_mib=12000,
        memory_total_mib=16384,
    )
    gpus = {g["index"]: g for g in alice.client().get("/api/v1/nodes/tesla-01/").json()["gpus"]}
    assert gpus[0]["telemetry"] is None
    assert gpus[1]["telemetry"]["utilization_pct"] == 87.5
    assert 29 <= gpus[1]["telemetry"]["sample_age_s"] <= 60


def test_nodes_list_does_not_query_per_node_or_gpu(alice, nodes, django_assert_max_num_queries):
    from tests.scheduler.conftest import make_node

    for i in range(10):
        make_node(f"extra-{i}", gpus=8)
    with django_assert_max_num_queries(8):
        response = alice.client().get("/api/v1/nodes/")
    assert response.json()["count"] == 13
