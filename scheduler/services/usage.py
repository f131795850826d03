"""The team view's numbers (issue #18 item 6): a team's quota and GPU-hour budget against
what it used this week, its members' jobs and bookings, what waits and why; booked against
used GPU-hours and the waste, per team and week; and each job's efficiency, like Slurm's
``seff``.

Definitions (docs/teams.md):

- *booked GPU-hours*: each booking's GPUs times the part of ``[start, end)`` inside the
  week and before now (a booking given back early ends when it was given back);
- *busy GPU-hours*: of those booked GPU-minutes, the ones whose one-minute telemetry rollup
  (``GpuMinute``) shows a mean utilization at or above the idle threshold
  (``KARIMASU_IDLE_THRESHOLD_PERCENT``), divided by 60;
- *wasted GPU-hours*: booked minus busy (a minute without readings counts as wasted: the
  GPUs were held and nobody can say they worked);
- *job GPU-hours held*: a job's GPUs times its run (start to finish, or now) inside the
  week; *busy* likewise from the rollups attributed to the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from math import inf
from typing import Any

from django.db.models import Count, F, Q, QuerySet

from portal.accounts.models import Team
from scheduler import job_display, messages, states
from scheduler.models import (
    LIVE_STATUSES,
    Job,
    Reservation,
    ReservationSlot,
    ReservationStatus,
    TeamQuota,
    attach_queue_places,
)
from scheduler.services.booking_policy import policy_of, team_gpu_hours, team_zone, week_bounds
from scheduler.telemetry.models import GpuMinute, JobUtilization
from scheduler.telemetry.services import idle_percent

MAX_WEEKS = 12


@dataclass(frozen=True)
class WeekUsage:
    team: str
    week_start: datetime
    booked_gpu_hours: float
    busy_gpu_hours: float
    job_gpu_hours: float
    job_busy_gpu_hours: float

    @property
    def wasted_gpu_hours(self) -> float:
        return max(self.booked_gpu_hours - self.busy_gpu_hours, 0.0)

    def as_dict(self) -> dict[str, Any]:
        booked = self.booked_gpu_hours
        return {
            "team": self.team,
            "week_start": self.week_start.isoformat(),
            "booked_gpu_hours": round(booked, 3),
            "busy_gpu_hours": round(self.busy_gpu_hours, 3),
            "wasted_gpu_hours": round(self.wasted_gpu_hours, 3),
            "wasted_percent": round(100 * self.wasted_gpu_hours / booked, 1) if booked else None,
            "job_gpu_hours": round(self.job_gpu_hours, 3),
            "job_busy_gpu_hours": round(self.job_busy_gpu_hours, 3),
        }


def _busy_minutes(minutes: QuerySet[GpuMinute]) -> int:
    """Rollup minutes whose mean utilization is at or above the idle threshold."""
    threshold = idle_percent()
    return minutes.filter(
        utilization_samples__gt=0,
        utilization_sum__gte=F("utilization_samples") * threshold,
    ).count()


def week_usage(team: Team, start: datetime, end: datetime, *, now: datetime) -> WeekUsage:
    """Booked, busy and job GPU-hours of ``team`` in ``[start, end)``, up to ``now``."""
    until = min(end, now)
    booked = busy = 0.0
    slots = ReservationSlot.objects.filter(
        reservation__team=team, start__lt=until, end__gt=start
    ).exclude(reservation__status=ReservationStatus.CANCELLED)
    for gpu_id, slot_start, slot_end in slots.values_list("gpu_id", "start", "end"):
        lo, hi = max(slot_start, start), min(slot_end, until)
        if hi <= lo:
            continue
        booked += (hi - lo).total_seconds() / 3600
        busy += (
            _busy_minutes(GpuMinute.objects.filter(gpu_id=gpu_id, minute__gte=lo, minute__lt=hi))
            / 60
        )
    job_hours = 0.0
    jobs = Job.objects.filter(team=team, started_at__lt=until).filter(
        Q(finished_at__isnull=True) | Q(finished_at__gt=start)
    )
    job_ids = []
    for pk, gpus, started, finished in jobs.values_list("pk", "gpus", "started_at", "finished_at"):
        if started is None:  # never: filtered above
            continue
        lo, hi = max(started, start), min(finished or until, until)
        if hi > lo:
            job_hours += gpus * (hi - lo).total_seconds() / 3600
            job_ids.append(pk)
    job_busy = (
        _busy_minutes(
            GpuMinute.objects.filter(job_id__in=job_ids, minute__gte=start, minute__lt=until)
        )
        / 60
    )
    return WeekUsage(team.slug, start, booked, busy, job_hours, job_busy)


def weekly_usage(team: Team, *, weeks: int, now: datetime) -> list[WeekUsage]:
    """The last ``weeks`` weeks (this one last), in the team's policy time zone."""
    zone = team_zone(policy_of(team))
    this_week, _ = week_bounds(now, zone)
    result = []
    for back in range(weeks - 1, -1, -1):
        start, end = week_bounds(this_week - timedelta(days=7 * back) + timedelta(hours=12), zone)
        result.append(week_usage(team, start, end, now=now))
    return result


def team_overview(team: Team, *, now: datetime, weeks: int = 4) -> dict[str, Any]:
    """Everything the team page and ``GET /api/v1/teams/{slug}/usage/`` show."""
    policy = policy_of(team)
    quota = TeamQuota.objects.filter(team=team).first()
    week_start, week_end = week_bounds(now, team_zone(policy))
    running = list(
        Job.objects.filter(team=team, status__in=states.ON_CLUSTER)
        .select_related("owner", "node")
        .order_by("started_at", "pk")
    )
    waiting = list(
        Job.objects.filter(team=team, status=states.QUEUED)
        .select_related("owner")
        .order_by("submitted_at", "pk")
    )
    attach_queue_places(waiting)
    # In line as the last cycle left them; those queued since (no place yet) last.
    waiting.sort(key=lambda job: job.queue_position or inf)
    bookings = list(
        Reservation.objects.filter(team=team, status__in=LIVE_STATUSES, end__gt=now)
        .select_related("holder", "node")
        .prefetch_related("slots__gpu")
        .order_by("start")
    )
    used = team_gpu_hours(team, week_start, week_end, now=now)
    recent = list(
        Job.objects.filter(team=team, started_at__isnull=False)
        .select_related("owner", "node")
        .order_by("-started_at", "-pk")[:20]
    )
    return {
        "team": team.slug,
        "name": team.name,
        "quota": {
            "guaranteed_gpus": quota.guaranteed_gpus if quota else 0,
            "borrowing_allowed": quota.borrowing_allowed if quota else True,
            "borrowing_limit": quota.borrowing_limit if quota else None,
            "gpus_in_use": sum(job.gpus for job in running),
        },
        "budget": {
            "week_start": week_start.isoformat(),
            "week_end": week_end.isoformat(),
            "weekly_gpu_hours": policy.weekly_gpu_hours,
            "used_gpu_hours": round(used, 3),
            "left_gpu_hours": (
                round(max(policy.weekly_gpu_hours - used, 0.0), 3)
                if policy.weekly_gpu_hours is not None
                else None
            ),
        },
        "running": [_job_row(job, now) for job in running],
        "waiting": [_job_row(job, now) for job in waiting],
        "bookings": [
            {
                "id": r.pk,
                "holder": r.holder.get_username(),
                "node": r.node.name,
                "gpus": sorted(s.gpu.index for s in r.slots.all()),
                "start": r.start.isoformat(),
                "end": r.end.isoformat(),
                "status": r.status,
                "purpose": r.purpose,
            }
            for r in bookings
        ],
        "weeks": [w.as_dict() for w in weekly_usage(team, weeks=weeks, now=now)],
        "efficiency": job_efficiencies(recent, now=now),
        "idle_threshold_percent": idle_percent(),
    }


def _job_row(job: Job, now: datetime) -> dict[str, Any]:
    return {
        "id": job.pk,
        "name": job.name,
        "owner": job.owner.get_username(),
        "status": job.status,
        "gpus": job.gpus,
        "node": job.node.name if job.node else None,
        "reason": job.reason,
        # A known code's words in the reader's language; "" for another (shown as its code).
        "reason_text": (
            job_display.reason_text(job.reason) if job.reason in job_display.REASON_TEXT else ""
        ),
        "message": messages.render(job.shown_message),
        "queue_position": job.queue_position,
        "eta": job.eta.isoformat() if job.eta else None,
        "submitted_at": job.submitted_at.isoformat(),
    }


def job_efficiency(job: Job, *, now: datetime) -> dict[str, Any]:
    """Like Slurm's ``seff``: GPU-hours held (GPUs x run so far), what the node agents saw
    (mean GPU utilization, GPU-hours they reported, GPU-hours busy, the share of idle
    samples, the GPU memory peak against the GPU's memory), and the CPU and memory asked for
    (used: not measured — the agents read GPUs only)."""
    return job_efficiencies([job], now=now)[0]


def job_efficiencies(jobs: list[Job], *, now: datetime) -> list[dict[str, Any]]:
    """``job_efficiency`` of each job, in two queries whatever their number."""
    rows = {r.job_id: r for r in JobUtilization.objects.filter(job__in=jobs)}
    threshold = idle_percent()
    busy_counts = dict(
        GpuMinute.objects.filter(
            job__in=[j for j in jobs if j.pk in rows],
            utilization_samples__gt=0,
            utilization_sum__gte=F("utilization_samples") * threshold,
        )
        .values_list("job_id")
        .annotate(n=Count("id"))
        .values_list("job_id", "n")
    )
    return [_efficiency(job, rows.get(job.pk), busy_counts.get(job.pk, 0), now) for job in jobs]


def _efficiency(
    job: Job, row: JobUtilization | None, busy_minutes: int, now: datetime
) -> dict[str, Any]:
    held = 0.0
    if job.started_at is not None:
        held = job.gpus * ((job.finished_at or now) - job.started_at).total_seconds() / 3600
    mean = (
        row.utilization_sum / row.utilization_samples if row and row.utilization_samples else None
    )
    busy = busy_minutes / 60 if row is not None else None
    return {
        "job": job.pk,
        "name": job.name,
        "owner": job.owner.get_username(),
        "status": job.status,
        "gpus": job.gpus,
        "gpu_hours_held": round(held, 3),
        "gpu_hours_reported": round(row.gpu_seconds / 3600, 3) if row else None,
        "gpu_hours_busy": round(busy, 3) if busy is not None else None,
        "gpu_utilization_mean": round(mean, 1) if mean is not None else None,
        "idle_percent": (
            round(100 * row.idle_samples / row.utilization_samples, 1)
            if row and row.utilization_samples
            else None
        ),
        "gpu_memory_peak_mib": row.memory_used_max if row else None,
        "gpu_memory_total_mib": job.node.gpu_memory_mb if job.node else None,
        "cpu_millis_requested": job.cpu_millis,
        "memory_mb_requested": job.memory_mb,
        "cpu_used": None,
        "memory_used": None,
    }


def waste_by_team(
    teams: QuerySet[Team],
    *,
    weeks: int,
    now: datetime,
    known: dict[str, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Booked, busy and wasted GPU-hours of each team for the last ``weeks`` weeks.
    ``known``: teams' weeks already computed (the team page has its own team's)."""
    rows = []
    for team in teams.order_by("slug"):
        if known and team.slug in known:
            rows += known[team.slug]
        else:
            rows += [w.as_dict() for w in weekly_usage(team, weeks=weeks, now=now)]
    return rows
