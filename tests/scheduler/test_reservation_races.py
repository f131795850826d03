"""Fifty people book the same GPUs at the same moment: exactly one wins.

Real concurrency against pytest-django's live server (a threaded WSGI server): on
PostgreSQL the exclusion constraint decides the races the application check cannot see;
on SQLite the IMMEDIATE write transactions serialize them.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from portal.accounts import services
from portal.accounts.models import Membership, Team, User
from scheduler.models import ReservationSlot, TeamPolicy
from tests.scheduler.conftest import make_node

pytestmark = pytest.mark.django_db(transaction=True)

CONTENDERS = 50


@pytest.fixture
def contenders():
    team = Team.objects.create(slug="lab", name="Lab")
    TeamPolicy.objects.create(
        team=team, max_booking_hours=None, max_days_ahead=None, max_gpus_per_user=None
    )
    make_node("tesla-01")
    tokens = []
    for i in range(CONTENDERS):
        user = User.objects.create_user(f"user{i}")
        Membership.objects.create(team=team, user=user)
        tokens.append(services.create_api_token(user, name="race", now=timezone.now())[1])
    return tokens


def race(url: str, bodies: list[dict], tokens: list[str]) -> list[int]:
    """POST each body with its token, all released at once; return the statuses."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = [0] * len(bodies)

    def post(i: int) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps(bodies[i]).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {tokens[i]}"},
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                statuses[i] = response.status
        except urllib.error.HTTPError as exc:
            statuses[i] = exc.code
            body = json.loads(exc.read())
            assert body["error"]["code"] == "conflict", body

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses


def assert_no_overlap() -> None:
    slots = list(ReservationSlot.objects.filter(active=True))
    for a in slots:
        clashes = ReservationSlot.objects.filter(
            gpu=a.gpu, active=True, start__lt=a.end, end__gt=a.start
        ).filter(~Q(pk=a.pk))
        assert not clashes.exists(), f"slot {a.pk} overlaps {list(clashes)}"


def body(start_h: float, end_h: float, base) -> dict:
    return {
        "team": "lab",
        "node": "tesla-01",
        "gpus": [0, 1],
        "start": (base + timedelta(hours=start_h)).isoformat(),
        "end": (base + timedelta(hours=end_h)).isoformat(),
    }


def test_fifty_bookings_of_the_same_slot_exactly_one_wins(live_server, contenders):
    base = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    statuses = race(
        f"{live_server.url}/api/v1/reservations/", [body(0, 2, base)] * CONTENDERS, contenders
    )
    assert sorted(statuses) == [201] + [409] * (CONTENDERS - 1)
    assert ReservationSlot.objects.filter(active=True).count() == 2
    assert_no_overlap()


def test_fifty_overlapping_but_different_windows_never_overlap(live_server, contenders):
    base = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    # Window i covers [i*0.1 h, i*0.1 h + 1 h): each overlaps its 9 neighbours on each side.
    bodies = [body(i * 0.1, i * 0.1 + 1, base) for i in range(CONTENDERS)]
    statuses = race(f"{live_server.url}/api/v1/reservations/", bodies, contenders)
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    assert_no_overlap()
