"""Idle auto-release: "use it or lose it" for bookings whose GPUs sit unused.

A live booking whose GPUs all stayed under the idle threshold for a whole window (default
15 min) after its grace period (default 30 min from the start) gets a notice: at the
earliest 45 minutes in. If they are still idle
one more window after the notice, the rest of the booking is reclaimed, the holder is told,
and the wasted GPU-hours are recorded on the booking. Activity after the notice clears it.
Admins can exempt a booking.

Whether GPUs were idle is a question for telemetry, passed in as `is_idle(reservation,
since, until)`, so this logic is tested with a controlled clock and the real signal alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from scheduler.models import LIVE_STATUSES, Reservation, ReservationStatus
from scheduler.services.reservations import end_reservation, notify_after_commit

log = logging.getLogger("karimasu.idle")

IsIdle = Callable[[Reservation, datetime, datetime], bool]


@dataclass
class IdleReport:
    noticed: list[int] = field(default_factory=list)
    reclaimed: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)


def check_idle_bookings(*, now: datetime, is_idle: IsIdle) -> IdleReport:
    grace = timedelta(minutes=settings.KARIMASU_IDLE_GRACE_MINUTES)
    window = timedelta(minutes=settings.KARIMASU_IDLE_WINDOW_MINUTES)
    report = IdleReport()
    candidates = (
        Reservation.objects.filter(
            status__in=LIVE_STATUSES,
            start__lte=now - grace - window,
            end__gt=now,
            idle_exempt=False,
        )
        .select_related("holder", "team", "node")
        .prefetch_related("slots__gpu")
    )
    for reservation in candidates:
        notice = reservation.idle_notice_at
        if notice is None:
            if is_idle(reservation, now - window, now):
                Reservation.objects.filter(pk=reservation.pk).update(idle_notice_at=now)
                notify_after_commit("idle_notice", reservation)
                report.noticed.append(reservation.pk)
                log.info("idle.notice reservation=%s", reservation.pk)
        elif now - notice >= window:
            if is_idle(reservation, notice, now):
                idle_since = notice - window
                waste = len(reservation.slots.all()) * (now - idle_since).total_seconds() / 3600
                end_reservation(None, reservation, now=now, status=ReservationStatus.RECLAIMED)
                Reservation.objects.filter(pk=reservation.pk).update(
                    waste_gpu_hours=reservation.waste_gpu_hours + waste
                )
                report.reclaimed.append(reservation.pk)
                log.warning(
                    "idle.reclaimed reservation=%s waste_gpu_hours=%.2f", reservation.pk, waste
                )
            else:
                Reservation.objects.filter(pk=reservation.pk).update(idle_notice_at=None)
                report.cleared.append(reservation.pk)
    return report
