"""Cron schedules: when a pipeline runs next, and the beat task's pass over due pipelines.

A schedule is five cron fields in UTC (``minute hour day-of-month month day-of-week``),
parsed by Celery's own ``crontab`` (so it means what it means in beat). Unlike Vixie cron,
a restricted day of month *and* day of week must both match (Celery's rule).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from celery.schedules import crontab
from django.db import transaction
from django.utils.translation import gettext as _

from pipelines import states
from pipelines.models import Overlap, Pipeline
from portal.errors import InvalidRequest

log = logging.getLogger("karimasu.pipelines")


def parse(schedule: str) -> crontab:
    fields = schedule.split()
    if len(fields) != 5:
        raise InvalidRequest(
            _("A schedule is five cron fields: minute hour day-of-month month day-of-week."),
            details={"schedule": ["five fields"]},
        )
    minute, hour, dom, month, dow = fields
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow
        )
    except (ValueError, TypeError) as error:
        raise InvalidRequest(
            _("Bad schedule %(schedule)s: %(error)s") % {"schedule": schedule, "error": error},
            details={"schedule": [str(error)]},
        ) from error


def next_run(schedule: str, after: datetime) -> datetime:
    """The first whole minute after ``after`` that the schedule names.

    >>> next_run("30 3 * * *", datetime(2026, 1, 1, 3, 30, tzinfo=UTC)).isoformat()
    '2026-01-02T03:30:00+00:00'
    >>> next_run("*/15 * * * 1", datetime(2026, 11, 29, 23, 50, tzinfo=UTC)).isoformat()
    '2026-11-30T00:00:00+00:00'
    """
    cron = parse(schedule)
    start = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for offset in range(0, 366 * 4 + 1):
        day = (start + timedelta(days=offset)).date()
        if day.month not in cron.month_of_year or day.day not in cron.day_of_month:
            continue
        if (day.isoweekday() % 7) not in cron.day_of_week:  # cron: 0 is Sunday
            continue
        for hour in sorted(cron.hour):
            for minute in sorted(cron.minute):
                moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                if moment >= start:
                    return moment
    raise InvalidRequest(
        _("The schedule %(schedule)s never runs.") % {"schedule": schedule},
        details={"schedule": ["never"]},
    )


def run_due(*, now: datetime) -> list[int]:
    """Start a run of every enabled pipeline whose time has come (one run per pipeline per
    pass, however many times were missed while beat was down). ``overlap``: ``skip`` does
    not start while a run of it is active, ``queue`` starts anyway (the scheduler and the
    gate queue its work)."""
    from pipelines.services.runs import start_run

    started: list[int] = []
    due = Pipeline.objects.filter(enabled=True, next_run_at__lte=now).exclude(schedule="")
    for pipeline_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            pipeline = (
                Pipeline.objects.select_for_update(skip_locked=True)
                .select_related("team", "owner")
                .filter(pk=pipeline_id, next_run_at__lte=now)
                .first()
            )
            if pipeline is None:
                continue  # another beat pass has it
            pipeline.next_run_at = next_run(pipeline.schedule, now)
            pipeline.save(update_fields=["next_run_at"])
            active = pipeline.runs.filter(status=states.RUNNING).exists()
            if active and pipeline.overlap == Overlap.SKIP:
                log.info("pipeline.schedule.skipped %s (a run is active)", pipeline)
                continue
            try:
                run = start_run(pipeline.owner, pipeline, now=now, trigger="schedule")
            except InvalidRequest as error:  # refused by the gate now: on the log, next time again
                log.warning("pipeline.schedule.refused %s: %s", pipeline, error.message)
                continue
            started.append(run.pk)
    return started
