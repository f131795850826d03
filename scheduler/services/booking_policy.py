"""Booking policy: the limits a team sets on its bookings, and the GPU-hours it has used.

`check_policy` names the first rule a booking breaks (PolicyViolation, 403, with
`details.rule`); `team_gpu_hours` is the weekly usage that bookings and jobs share.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from portal.accounts.models import Team, User
from portal.errors import NotPermitted
from scheduler.models import LIVE_STATUSES, Job, Reservation, ReservationStatus, TeamPolicy


class PolicyViolation(NotPermitted):
    code = "policy_violation"


def policy_of(team: Team) -> TeamPolicy:
    policy, _ = TeamPolicy.objects.get_or_create(team=team)
    return policy


def week_start(moment: datetime) -> datetime:
    day = moment - timedelta(days=moment.weekday())
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


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
        job_end = job.finished_at or now
        hours = (min(job_end, end) - max(job.started_at, start)).total_seconds() / 3600
        total += max(hours, 0) * job.gpus
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
    """Raise PolicyViolation naming the first rule the booking breaks."""
    policy = policy_of(team)
    hours = (end - start).total_seconds() / 3600
    if policy.max_booking_hours is not None and hours > policy.max_booking_hours:
        raise PolicyViolation(
            f"Bookings of {team.slug} last at most {policy.max_booking_hours} h "
            f"(this one: {hours:.1f} h).",
            details={"rule": "max_booking_hours", "limit": policy.max_booking_hours},
        )
    if policy.max_days_ahead is not None and start > now + timedelta(days=policy.max_days_ahead):
        raise PolicyViolation(
            f"{team.slug} books at most {policy.max_days_ahead} days ahead.",
            details={"rule": "max_days_ahead", "limit": policy.max_days_ahead},
        )
    if policy.max_gpus_per_user is not None:
        held = sum(
            len(r.slots.all())
            for r in Reservation.objects.filter(
                holder=user,
                status__in=LIVE_STATUSES,
                start__lt=end,
                end__gt=start,
            )
            .exclude(pk=exclude_reservation)
            .prefetch_related("slots")
        )
        if held + n_gpus > policy.max_gpus_per_user:
            raise PolicyViolation(
                f"You may hold at most {policy.max_gpus_per_user} GPUs at once in "
                f"{team.slug}; you already hold {held} then.",
                details={
                    "rule": "max_gpus_per_user",
                    "limit": policy.max_gpus_per_user,
                    "held": held,
                },
            )
    if policy.weekly_gpu_hours is not None:
        week = week_start(start)
        used = team_gpu_hours(
            team, week, week + timedelta(days=7), now=now, exclude_reservation=exclude_reservation
        )
        wanted = n_gpus * (min(end, week + timedelta(days=7)) - start).total_seconds() / 3600
        if used + wanted > policy.weekly_gpu_hours:
            raise PolicyViolation(
                f"{team.slug} has {max(policy.weekly_gpu_hours - used, 0):.1f} of its "
                f"{policy.weekly_gpu_hours:g} GPU-hours left in the week of "
                f"{week:%Y-%m-%d}; this booking needs {wanted:.1f}.",
                details={
                    "rule": "weekly_gpu_hours",
                    "limit": policy.weekly_gpu_hours,
                    "used": round(used, 2),
                    "requested": round(wanted, 2),
                },
            )
