"""Booking policy: the limits a team sets on its bookings, and the GPU-hours it has used.

`check_policy` names the first rule a booking breaks (PolicyViolation, 403, with
`details.rule`); `team_gpu_hours` is the weekly usage that bookings and jobs share.

The limits hold under concurrency because `check_policy` runs inside the booking's
transaction after locking, in this order, the team's policy row and the holder's user row
(`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's IMMEDIATE transactions serialize writers):
two bookings that could together break a limit of the same team or the same person wait for
each other, and the second one counts what the first one wrote.

Weeks are the team's: Monday 00:00 to the next Monday 00:00 in `TeamPolicy.time_zone`
(else the site's), so a week is 167 or 169 hours around DST changes. A booking that spans
weeks is charged to each week it touches, and each must stay within the budget.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext as _

from portal.accounts.models import Team, User
from portal.errors import NotPermitted
from scheduler.models import LIVE_STATUSES, Job, Reservation, ReservationStatus, TeamPolicy


class PolicyViolation(NotPermitted):
    code = "policy_violation"


def policy_of(team: Team) -> TeamPolicy:
    policy, _ = TeamPolicy.objects.get_or_create(team=team)
    return policy


def team_zone(policy: TeamPolicy | None) -> tzinfo:
    """The zone the team's weeks are counted in: its policy's, else the site's."""
    name = (policy.time_zone if policy is not None else "") or settings.TIME_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    # Midnight exists in every zone Karimasu is likely to meet; where a DST jump skips it,
    # zoneinfo's fold=0 answer is the instant just after the gap, which is still the start.
    return datetime.combine(day, time.min, tzinfo=zone)


def week_bounds(moment: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) in `zone` around `moment`, as UTC datetimes.

    UTC on purpose: Python subtracts two datetimes of the same zone by their wall clocks,
    which would make every week 168 hours long.
    """
    day = moment.astimezone(zone).date()
    monday = day - timedelta(days=day.weekday())
    return (
        _local_midnight(monday, zone).astimezone(UTC),
        _local_midnight(monday + timedelta(days=7), zone).astimezone(UTC),
    )


def week_start(moment: datetime, zone: tzinfo | None = None) -> datetime:
    return week_bounds(moment, zone or ZoneInfo(settings.TIME_ZONE))[0]


def team_gpu_hours(
    team: Team,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    exclude_reservation: int | None = None,
) -> float:
    """GPU-hours the team holds or used in [start, end): live or past reservations (clipped
    to the window and to when they were given back) plus its jobs' GPU time."""
    total = 0.0
    reservations = (
        Reservation.objects.filter(team=team, start__lt=end, end__gt=start)
        .exclude(status=ReservationStatus.CANCELLED)
        .prefetch_related("slots")
    )
    for res in reservations:
        if res.pk == exclude_reservation:
            continue
        hours = (min(res.end, end) - max(res.start, start)).total_seconds() / 3600
        total += max(hours, 0) * len(res.slots.all())
    jobs = Job.objects.filter(team=team, started_at__lt=end).filter(
        Q(finished_at__isnull=True) | Q(finished_at__gt=start)
    )
    for job in jobs:
        if job.started_at is None:  # never: filtered above
            continue
        job_end = job.finished_at or now
        hours = (min(job_end, end) - max(job.started_at, start)).total_seconds() / 3600
        total += max(hours, 0) * job.gpus * job.nodes  # every GPU of a gang
    return total


def check_policy(
    user: User,
    team: Team,
    n_gpus: int,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    exclude_reservation: int | None = None,
) -> None:
    """Raise PolicyViolation naming the first rule the booking breaks.

    Call inside the transaction that writes the booking: the policy and user rows stay
    locked until it commits (see the module's docstring).
    """
    policy_of(team)  # exists before it can be locked
    policy = TeamPolicy.objects.select_for_update().get(team=team)
    User.objects.select_for_update().filter(pk=user.pk).exists()
    hours = (end - start).total_seconds() / 3600
    if policy.max_booking_hours is not None and hours > policy.max_booking_hours:
        raise PolicyViolation(
            _("Bookings of %(team)s last at most %(limit)s h (this one: %(hours)s h).")
            % {"team": team.slug, "limit": policy.max_booking_hours, "hours": f"{hours:.1f}"},
            details={"rule": "max_booking_hours", "limit": policy.max_booking_hours},
        )
    if policy.max_days_ahead is not None and start > now + timedelta(days=policy.max_days_ahead):
        raise PolicyViolation(
            _("%(team)s books at most %(days)s days ahead.")
            % {"team": team.slug, "days": policy.max_days_ahead},
            details={"rule": "max_days_ahead", "limit": policy.max_days_ahead},
        )
    if policy.max_gpus_per_user is not None:
        overlapping = Reservation.objects.filter(
            holder=user, status__in=LIVE_STATUSES, start__lt=end, end__gt=start
        )
        if exclude_reservation is not None:
            overlapping = overlapping.exclude(pk=exclude_reservation)
        held = sum(len(r.slots.all()) for r in overlapping.prefetch_related("slots"))
        if held + n_gpus > policy.max_gpus_per_user:
            raise PolicyViolation(
                _(
                    "You may hold at most %(limit)s GPUs at once in %(team)s; "
                    "you already hold %(held)s then."
                )
                % {"limit": policy.max_gpus_per_user, "team": team.slug, "held": held},
                details={
                    "rule": "max_gpus_per_user",
                    "limit": policy.max_gpus_per_user,
                    "held": held,
                },
            )
    if policy.weekly_gpu_hours is not None:
        zone = team_zone(policy)
        week, week_end = week_bounds(start, zone)
        while week < end:
            _check_week(policy, team, week, week_end, start, end, n_gpus, now, exclude_reservation)
            week, week_end = week_end, week_bounds(week_end, zone)[1]


def _check_week(
    policy: TeamPolicy,
    team: Team,
    week: datetime,
    week_end: datetime,
    start: datetime,
    end: datetime,
    n_gpus: int,
    now: datetime,
    exclude_reservation: int | None,
) -> None:
    assert policy.weekly_gpu_hours is not None
    used = team_gpu_hours(team, week, week_end, now=now, exclude_reservation=exclude_reservation)
    wanted = n_gpus * (min(end, week_end) - max(start, week)).total_seconds() / 3600
    if used + wanted > policy.weekly_gpu_hours:
        day = week.astimezone(team_zone(policy)).date()
        raise PolicyViolation(
            _(
                "%(team)s has %(left)s of its %(limit)s GPU-hours left in the week of "
                "%(week)s; this booking needs %(wanted)s."
            )
            % {
                "team": team.slug,
                "left": f"{max(policy.weekly_gpu_hours - used, 0):.1f}",
                "limit": f"{policy.weekly_gpu_hours:g}",
                "week": f"{day:%Y-%m-%d}",
                "wanted": f"{wanted:.1f}",
            },
            details={
                "rule": "weekly_gpu_hours",
                "limit": policy.weekly_gpu_hours,
                "used": round(used, 2),
                "requested": round(wanted, 2),
                "week": day.isoformat(),
            },
        )
