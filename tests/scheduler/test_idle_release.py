"""Idle auto-release with a controlled clock: notice, then reclaim, then the GPUs are free."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from scheduler.models import Reservation, ReservationStatus
from scheduler.services.idle import check_idle_bookings
from scheduler.services.reservations import reserve_gpus

pytestmark = pytest.mark.django_db


@pytest.fixture
def booking(alice, nodes, unlimited, vision):
    now = timezone.now().replace(microsecond=0)
    return reserve_gpus(
        alice.user,
        team=vision,
        node=nodes["tesla-01"],
        gpu_indices=[0, 1],
        start=now,
        end=now + timedelta(hours=8),
        now=now,
    )


def always(value):
    return lambda reservation, since, until: value


def test_notice_then_reclaim_then_free(
    booking, bob, vision, eager_tasks, django_capture_on_commit_callbacks
):
    t = booking.start
    # Within the grace period nothing happens, idle or not.
    assert check_idle_bookings(now=t + timedelta(minutes=20), is_idle=always(True)).noticed == []

    with django_capture_on_commit_callbacks(execute=True):
        report = check_idle_bookings(now=t + timedelta(minutes=45), is_idle=always(True))
    assert report.noticed == [booking.pk]
    assert "Use it or lose it" in mail.outbox[-1].body

    # Less than a window after the notice: wait.
    assert check_idle_bookings(now=t + timedelta(minutes=55), is_idle=always(True)).reclaimed == []

    with django_capture_on_commit_callbacks(execute=True):
        report = check_idle_bookings(now=t + timedelta(minutes=61), is_idle=always(True))
    assert report.reclaimed == [booking.pk]
    booking.refresh_from_db()
    assert booking.status == ReservationStatus.RECLAIMED
    assert booking.end == t + timedelta(minutes=61)
    # Idle since the window before the notice (t+30 min) until now: 31 min x 2 GPUs.
    assert booking.waste_gpu_hours == pytest.approx(2 * 31 / 60)
    assert "given back to the pool" in mail.outbox[-1].body

    # The rest of the day is bookable again.
    reserve_gpus(
        bob.user,
        team=vision,
        node=booking.node,
        gpu_indices=[0, 1],
        start=t + timedelta(minutes=62),
        end=t + timedelta(hours=3),
        now=t + timedelta(minutes=62),
    )


def test_activity_after_the_notice_clears_it(booking):
    t = booking.start
    check_idle_bookings(now=t + timedelta(minutes=45), is_idle=always(True))
    report = check_idle_bookings(now=t + timedelta(minutes=61), is_idle=always(False))
    assert report.cleared == [booking.pk]
    booking.refresh_from_db()
    assert booking.status == ReservationStatus.ACTIVE
    assert booking.idle_notice_at is None


def test_busy_bookings_are_left_alone(booking):
    t = booking.start
    report = check_idle_bookings(now=t + timedelta(hours=2), is_idle=always(False))
    assert report.noticed == report.reclaimed == []


def test_exempt_bookings_are_never_reclaimed(booking, admin):
    admin.client().post(f"/api/v1/reservations/{booking.pk}/exempt/")
    t = booking.start
    check_idle_bookings(now=t + timedelta(minutes=45), is_idle=always(True))
    check_idle_bookings(now=t + timedelta(minutes=61), is_idle=always(True))
    assert Reservation.objects.get(pk=booking.pk).status != ReservationStatus.RECLAIMED


def test_only_admins_exempt(booking, alice):
    response = alice.client().post(f"/api/v1/reservations/{booking.pk}/exempt/")
    assert response.status_code == 403
