"""Issue #12 item 3: booking limits hold under concurrency, and weeks are the team's weeks.

Before: concurrent requests got one user 6 GPUs against a limit of 4 and 144 GPU-hours
against a 20 GPU-hour weekly budget (the limits were read, then written, by the app). The
limits are now checked under row locks (the team's policy row, then the user's row).
Real concurrency through the live server; on PostgreSQL it is the locks that decide.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone

from portal.accounts import services
from portal.accounts.models import Membership, Team, User
from scheduler.models import Reservation, ReservationStatus, TeamPolicy
from scheduler.services.booking_policy import week_bounds
from tests.scheduler.conftest import make_node

CONTENDERS = 8


def race(url: str, bodies: list[dict], token: str) -> list[tuple[int, str]]:
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, str]] = [(0, "")] * len(bodies)

    def post(i: int) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps(bodies[i]).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                results[i] = (response.status, "")
        except urllib.error.HTTPError as exc:
            results[i] = (exc.code, json.loads(exc.read())["error"]["code"])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.fixture
def lab(transactional_db):
    team = Team.objects.create(slug="lab", name="Lab")
    user = User.objects.create_user("greedy")
    Membership.objects.create(team=team, user=user)
    for i in range(CONTENDERS // 2):
        make_node(f"tesla-{i:02d}")  # 2 GPUs each: every request books a different GPU
    token = services.create_api_token(user, name="race", now=timezone.now())[1]
    return team, user, token


def bodies(start: datetime, hours: float) -> list[dict]:
    return [
        {
            "team": "lab",
            "node": f"tesla-{i // 2:02d}",
            "gpus": [i % 2],
            "start": start.isoformat(),
            "end": (start + timedelta(hours=hours)).isoformat(),
        }
        for i in range(CONTENDERS)
    ]


def next_monday_noon() -> datetime:
    """A window well inside one week (in UTC, the team's zone here), whatever today is."""
    today = timezone.now().astimezone(UTC).date()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime(monday.year, monday.month, monday.day, 12, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_concurrent_bookings_never_exceed_the_per_user_gpu_limit(live_server, lab):
    team, user, token = lab
    TeamPolicy.objects.create(
        team=team, max_booking_hours=None, max_days_ahead=None, max_gpus_per_user=4
    )
    results = race(f"{live_server.url}/api/v1/reservations/", bodies(next_monday_noon(), 2), token)
    assert sorted(results) == [(201, "")] * 4 + [(403, "policy_violation")] * 4, results
    assert Reservation.objects.filter(holder=user).count() == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_bookings_never_exceed_the_weekly_budget(live_server, lab):
    team, _, token = lab
    TeamPolicy.objects.create(
        team=team,
        max_booking_hours=None,
        max_days_ahead=None,
        max_gpus_per_user=None,
        weekly_gpu_hours=20,
        time_zone="UTC",
    )
    results = race(f"{live_server.url}/api/v1/reservations/", bodies(next_monday_noon(), 5), token)
    assert sorted(results) == [(201, "")] * 4 + [(403, "policy_violation")] * 4, results
    booked = Reservation.objects.exclude(status=ReservationStatus.CANCELLED)
    assert sum((r.end - r.start).total_seconds() / 3600 for r in booked) == 20


# --- week boundaries -------------------------------------------------------------------


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("zone", "moment", "want_start", "want_hours"),
    [
        # Europe/Berlin leaves summer time on Sunday 2026-10-25: that week has 169 hours.
        ("Europe/Berlin", (2026, 10, 25, 12), (2026, 10, 19), 169),
        # ... and enters it on Sunday 2026-03-29: 167 hours.
        ("Europe/Berlin", (2026, 3, 29, 1, 30), (2026, 3, 23), 167),
        ("America/New_York", (2026, 11, 1, 0, 30), (2026, 10, 26), 169),
        # Year ends: the week of Thursday 2026-12-31 began on Monday 2026-12-28.
        ("Asia/Tokyo", (2027, 1, 1, 0, 30), (2026, 12, 28), 168),
        ("UTC", (2026, 12, 31, 23, 59), (2026, 12, 28), 168),
        # Monday 00:00 local is the first instant of its week.
        ("Asia/Tokyo", (2027, 1, 4, 0, 0), (2027, 1, 4), 168),
    ],
)
def test_week_bounds_are_local_mondays(zone, moment, want_start, want_hours):
    start, end = week_bounds(local(zone, *moment), ZoneInfo(zone))
    assert start == local(zone, *want_start)
    assert (end - start).total_seconds() / 3600 == want_hours
    assert end.astimezone(ZoneInfo(zone)).weekday() == 0
    assert end.astimezone(ZoneInfo(zone)).hour == 0


def test_week_in_tokyo_is_not_the_week_in_utc():
    # Monday 2027-01-04 05:00 in Tokyo is still Sunday 2027-01-03 in UTC.
    moment = local("Asia/Tokyo", 2027, 1, 4, 5)
    assert week_bounds(moment, ZoneInfo("Asia/Tokyo"))[0] == local("Asia/Tokyo", 2027, 1, 4)
    assert week_bounds(moment, ZoneInfo("UTC"))[0] == local("UTC", 2026, 12, 28)


@pytest.mark.django_db
def test_booking_across_the_teams_week_boundary_counts_in_both_weeks(lab):
    from scheduler.services.booking_policy import PolicyViolation, check_policy

    team, user, _ = lab
    TeamPolicy.objects.create(
        team=team,
        max_booking_hours=None,
        max_days_ahead=None,
        max_gpus_per_user=None,
        weekly_gpu_hours=10,
        time_zone="Asia/Tokyo",
    )
    tokyo = ZoneInfo("Asia/Tokyo")
    now = local("Asia/Tokyo", 2026, 12, 20, 12)
    # Sunday 2026-12-27 20:00 to Monday 2026-12-28 08:00 in Tokyo: 4 h then 8 h.
    start, end = local("Asia/Tokyo", 2026, 12, 27, 20), local("Asia/Tokyo", 2026, 12, 28, 8)
    with transaction.atomic():
        check_policy(user, team, 1, start, end, now=now)  # 4 h + 8 h, each under 10
    with pytest.raises(PolicyViolation) as refused, transaction.atomic():
        check_policy(user, team, 1, start, end + timedelta(hours=3), now=now)  # 11 h next week
    assert refused.value.details["week"] == "2026-12-28"
    assert week_bounds(start, tokyo)[1] == local("Asia/Tokyo", 2026, 12, 28)
