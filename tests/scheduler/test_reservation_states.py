"""Bookings change status along one table (``scheduler.reservation_states``) through one
writer (``reservations.move_reservation``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from portal.errors import Conflict
from scheduler import reservation_states
from scheduler.models import Reservation, ReservationStatus
from scheduler.services.reservations import (
    advance_reservations,
    end_reservation,
    move_reservation,
)
from tests.scheduler.test_reservations import book

pytestmark = pytest.mark.django_db
PACKAGE = Path(__file__).resolve().parents[2] / "scheduler"


def test_the_table_names_every_status_and_ended_ones_have_no_exit() -> None:
    assert set(reservation_states.ALLOWED) == set(ReservationStatus.values)
    for status in set(reservation_states.ALL) - reservation_states.LIVE:
        assert reservation_states.ALLOWED[status] == frozenset(), status


def test_an_ended_booking_cannot_be_revived(alice, nodes, unlimited) -> None:
    res = Reservation.objects.get(pk=book(alice, start=0, end=2).json()["id"])
    end_reservation(alice.user, res, now=res.start)
    res.refresh_from_db()
    assert res.status == ReservationStatus.RELEASED
    with pytest.raises(Conflict):
        move_reservation(res, ReservationStatus.ACTIVE)
    res.refresh_from_db()
    assert res.status == ReservationStatus.RELEASED


def test_a_stale_read_loses_instead_of_overwriting(alice, nodes, unlimited) -> None:
    res = Reservation.objects.get(pk=book(alice, start=1, end=2).json()["id"])
    stale = Reservation.objects.get(pk=res.pk)
    end_reservation(alice.user, res, now=res.start - (res.end - res.start))  # cancelled
    with pytest.raises(Conflict):
        move_reservation(stale, ReservationStatus.ACTIVE)
    assert Reservation.objects.get(pk=res.pk).status == ReservationStatus.CANCELLED


def test_giving_back_a_begun_booking_the_beat_has_not_advanced(alice, nodes, unlimited) -> None:
    res = Reservation.objects.get(pk=book(alice, start=1, end=3).json()["id"])
    assert res.status == ReservationStatus.BOOKED
    ended = end_reservation(alice.user, res, now=res.start + (res.end - res.start) / 2)
    assert ended.status == ReservationStatus.RELEASED and ended.end < res.end


def test_a_booking_whose_whole_time_passed_unseen_expires(alice, nodes, unlimited) -> None:
    res = Reservation.objects.get(pk=book(alice, start=1, end=2).json()["id"])
    assert advance_reservations(now=res.end) == 1
    res.refresh_from_db()
    assert res.status == ReservationStatus.EXPIRED


def test_only_the_reservations_service_writes_a_booking_status() -> None:
    writers = []
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts or path.name == "reservations.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            values = []
            if isinstance(node, ast.Call):
                values = [k.value for k in node.keywords if k.arg == "status"]
                if not (isinstance(node.func, ast.Attribute) and node.func.attr == "update"):
                    values = []
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "status" for t in node.targets
            ):
                values = [node.value]
            if any("ReservationStatus" in ast.unparse(v) for v in values):
                writers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert writers == []
