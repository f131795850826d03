"""The bookings page (``/bookings/``): the week's calendar of every GPU, booking, borrowing
and giving back from the browser through the same services as the API."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from scheduler.models import MaintenanceWindow, Reservation
from scheduler.services import calendar_view, reservations

from .conftest import make_node

pytestmark = pytest.mark.django_db


def _client(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def _monday(now):
    local = timezone.localtime(now)
    monday = (local - timedelta(days=local.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return monday


def _book(persona, team, node, indices, start, end, purpose=""):
    return reservations.reserve_gpus(
        persona.user,
        team=team,
        node=node,
        gpu_indices=indices,
        start=start,
        end=end,
        purpose=purpose,
        now=timezone.now(),
    )


def test_the_page_needs_a_login(client) -> None:
    response = client.get("/bookings/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_list_view_shows_each_booking_on_its_days(
    alice, bob, charlie, vision, nlp, unlimited
) -> None:
    """The page's list view (narrow screens, no script) holds the same blocks as the
    timeline's data, one entry per booking per day it touches."""
    node = make_node("tesla-01")
    monday = _monday(timezone.now()) + timedelta(days=7)  # next week: all in the future
    _book(alice, vision, node, [0], monday + timedelta(days=1), monday + timedelta(days=2), "bert")
    _book(bob, vision, node, [1], monday + timedelta(hours=12), monday + timedelta(hours=18))
    _book(charlie, nlp, node, [1], monday + timedelta(days=3), monday + timedelta(days=4), "llm")
    MaintenanceWindow.objects.create(
        node=None, start=monday + timedelta(days=6), end=monday + timedelta(days=7), reason="UPS"
    )
    span = calendar_view.span_from(f"{monday:%Y-%m-%d}", 7, now=timezone.now())
    days = calendar_view.agenda(calendar_view.calendar_data(alice.user, span, now=timezone.now()))
    assert len(days) == 7
    assert [(e["kind"], e["holder"]) for e in days[0]["entries"]] == [("team", "bob")]
    assert [(e["kind"], e["purpose"]) for e in days[1]["entries"]] == [("mine", "bert")]
    assert [(e["kind"], e["purpose"]) for e in days[3]["entries"]] == [("other", "")]  # nlp's
    assert [(e["kind"], e["purpose"]) for e in days[6]["entries"]] == [("maintenance", "UPS")]

    page = _client(alice).get(f"/bookings/?from={monday:%Y-%m-%d}").content.decode()
    assert 'class="agenda-entry mine"' in page and 'class="agenda-entry maintenance"' in page
    assert f"{monday:%Y-%m-%d} to {monday + timedelta(days=6):%Y-%m-%d}" in page
    assert "/calendar/" in page and ".ics" in page  # the iCal subscription link


def test_the_calendar_rolls_from_today_and_navigates_by_day_and_week(alice) -> None:
    today = timezone.localtime(timezone.now()).date()
    page = _client(alice).get("/bookings/").content.decode()
    assert f'data-from="{today:%Y-%m-%d}" data-days="7"' in page
    assert f"?from={today + timedelta(days=1):%Y-%m-%d}&amp;days=7" in page
    assert f"?from={today - timedelta(days=7):%Y-%m-%d}&amp;days=7" in page
    page = _client(alice).get(f"/bookings/?from={today:%Y-%m-%d}&days=1").content.decode()
    assert 'data-days="1"' in page
    assert _client(alice).get("/bookings/?from=garbage&days=-3").status_code == 200


def test_booking_from_the_form(alice, vision, unlimited) -> None:
    make_node("tesla-01")
    start = timezone.localtime(timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    response = _client(alice).post(
        "/bookings/",
        {
            "action": "book",
            "book-team": "vision",
            "book-node": "tesla-01",
            "book-gpus": "0, 1",
            "book-start": f"{start:%Y-%m-%dT%H:%M}",
            "book-end": f"{start + timedelta(hours=3):%Y-%m-%dT%H:%M}",
            "book-purpose": "fine-tuning",
        },
        follow=True,
    )
    booking = Reservation.objects.get()
    assert (booking.holder, booking.purpose, booking.end - booking.start) == (
        alice.user,
        "fine-tuning",
        timedelta(hours=3),
    )
    assert sorted(s.gpu.index for s in booking.slots.all()) == [0, 1]
    page = response.content.decode()
    assert "Booked: tesla-01 GPU 0, 1" in page
    assert "fine-tuning" in page  # in "Your bookings"


def test_a_clash_says_who_holds_the_gpus_and_keeps_the_form(alice, bob, vision, unlimited) -> None:
    node = make_node("tesla-01")
    start = timezone.localtime(timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    _book(bob, vision, node, [0], start, start + timedelta(hours=2))
    response = _client(alice).post(
        "/bookings/",
        {
            "action": "book",
            "book-team": "vision",
            "book-node": "tesla-01",
            "book-gpus": "0",
            "book-start": f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M}",
            "book-end": f"{start + timedelta(hours=4):%Y-%m-%dT%H:%M}",
        },
    )
    assert response.status_code == 200  # the form again, not a redirect
    page = response.content.decode()
    assert "Those GPUs are not free for that whole time." in page
    assert f"GPU 0: bob (vision) {start:%Y-%m-%d %H:%M}" in page
    assert Reservation.objects.filter(holder=alice.user).count() == 0


def test_bad_form_input_is_explained(alice, vision) -> None:
    make_node("tesla-01")
    response = _client(alice).post(
        "/bookings/",
        {"action": "book", "book-team": "vision", "book-node": "tesla-01", "book-gpus": "x"},
    )
    page = response.content.decode()
    assert "Give GPU numbers separated by commas." in page
    assert "This field is required." in page
    assert not Reservation.objects.exists()


def test_a_team_not_ones_own_is_not_offered(charlie, vision) -> None:
    make_node("tesla-01")
    response = _client(charlie).post(
        "/bookings/",
        {"action": "borrow", "borrow-team": "vision", "borrow-gpus": "1", "borrow-hours": "1"},
    )
    assert "Select a valid choice" in response.content.decode()
    assert not Reservation.objects.exists()


def test_borrow_now_then_give_back(alice, vision, unlimited) -> None:
    make_node("tesla-01")
    client = _client(alice)
    response = client.post(
        "/bookings/",
        {"action": "borrow", "borrow-team": "vision", "borrow-gpus": "1", "borrow-hours": "2"},
        follow=True,
    )
    booking = Reservation.objects.get()
    assert booking.status == "active"
    assert "Borrowed: tesla-01 GPU 0" in response.content.decode()
    response = client.post(
        "/bookings/", {"action": "end", "reservation": str(booking.pk)}, follow=True
    )
    booking.refresh_from_db()
    assert booking.status == "released"
    assert "Gave back: tesla-01 GPU 0" in response.content.decode()


def test_only_the_holder_or_a_lead_gives_a_booking_back(alice, bob, charlie, vision, unlimited):
    node = make_node("tesla-01")
    start = timezone.now() + timedelta(days=1)
    booking = _book(bob, vision, node, [0], start, start + timedelta(hours=2))
    response = _client(charlie).post(
        "/bookings/", {"action": "end", "reservation": str(booking.pk)}, follow=True
    )
    booking.refresh_from_db()
    assert booking.status == "booked"
    assert response.status_code == 200 and 'class="error"' in response.content.decode()


def test_the_page_speaks_japanese(alice) -> None:
    alice.user.language = "ja"
    alice.user.save()
    page = _client(alice).get("/bookings/").content.decode()
    assert "予約" in page and "今すぐ借りる" in page


def test_extend_by_an_hour_when_free_and_say_why_not_when_taken(
    alice, bob, vision, unlimited
) -> None:
    node = make_node("tesla-01")
    start = timezone.now() + timedelta(hours=1)
    booking = _book(alice, vision, node, [0], start, start + timedelta(hours=2))
    client = _client(alice)
    response = client.post(
        "/bookings/", {"action": "extend", "reservation": str(booking.pk)}, follow=True
    )
    booking.refresh_from_db()
    assert booking.end - booking.start == timedelta(hours=3)
    assert "Extended: tesla-01 GPU 0" in response.content.decode()
    _book(bob, vision, node, [0], booking.end, booking.end + timedelta(hours=1))
    response = client.post(
        "/bookings/", {"action": "extend", "reservation": str(booking.pk)}, follow=True
    )
    booking.refresh_from_db()
    assert booking.end - booking.start == timedelta(hours=3)  # bob's booking follows
    assert "bob (vision)" in response.content.decode()


def test_times_are_shown_and_read_in_the_users_time_zone(alice, vision, unlimited) -> None:
    make_node("tesla-01")
    client = _client(alice)
    response = client.post(
        "/accounts/time-zone/", {"time_zone": "Asia/Tokyo", "next": "/bookings/"}
    )
    assert response["Location"] == "/bookings/"
    alice.user.refresh_from_db()
    assert alice.user.time_zone == "Asia/Tokyo"
    page = client.get("/bookings/").content.decode()
    assert "Times are in Asia/Tokyo." in page
    assert '<option value="Asia/Tokyo" selected>' in page
    tomorrow = timezone.localtime(timezone.now(), ZoneInfo("Asia/Tokyo")) + timedelta(days=1)
    client.post(
        "/bookings/",
        {
            "action": "book",
            "book-team": "vision",
            "book-node": "tesla-01",
            "book-gpus": "0",
            "book-start": f"{tomorrow:%Y-%m-%d}T10:00",
            "book-end": f"{tomorrow:%Y-%m-%d}T12:00",
        },
    )
    booking = Reservation.objects.get()
    start = booking.start.astimezone(ZoneInfo("Asia/Tokyo"))
    assert (start.hour, start.minute) == (10, 0)  # 10:00 in Tokyo, 01:00 UTC
    assert booking.start.astimezone(ZoneInfo("UTC")).hour == 1


def test_an_unknown_time_zone_is_refused_and_empty_means_the_sites(alice) -> None:
    client = _client(alice)
    response = client.post("/accounts/time-zone/", {"time_zone": "Mars/Olympus"}, follow=True)
    assert "Unknown time zone" in response.content.decode()
    alice.user.refresh_from_db()
    assert alice.user.time_zone == ""
    client.post("/accounts/time-zone/", {"time_zone": "Asia/Tokyo"})
    client.post("/accounts/time-zone/", {"time_zone": "", "next": "https://evil.example/"})
    alice.user.refresh_from_db()
    assert alice.user.time_zone == ""
