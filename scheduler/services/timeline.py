"""The bookings calendar: one week of every GPU's bookings and the maintenance windows, laid
out as bars (percent offsets within the week) for the bookings page.

Read-only and cheap: three queries (nodes with GPUs, the week's booking slots, the week's
maintenance windows), whatever the number of bookings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils.timezone import localtime

from portal.accounts.models import Membership, User
from scheduler.models import (
    LIVE_STATUSES,
    Gpu,
    MaintenanceWindow,
    Node,
    ReservationSlot,
    ReservationStatus,
)
from scheduler.services.access import can_see_purpose

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Bar:
    """One interval on a row: ``left`` and ``width`` in percent of the week; ``kind`` is
    ``mine``, ``team`` (a teammate's), ``other``, ``ended`` (released, reclaimed,
    expired) or ``maintenance``."""

    left: float
    width: float
    kind: str
    label: str
    title: str
    reservation_id: int | None = None


@dataclass
class GpuRow:
    index: int
    model: str
    healthy: bool
    bars: list[Bar] = field(default_factory=list)


@dataclass
class NodeRow:
    name: str
    model: str
    cordoned: bool
    ready: bool
    gpus: list[GpuRow] = field(default_factory=list)
    maintenance: list[Bar] = field(default_factory=list)


def local_span(start: datetime, end: datetime) -> str:
    """``2026-11-24 10:00 – 2026-11-24 12:00``: ``start – end`` in the current time zone."""
    return f"{localtime(start):%Y-%m-%d %H:%M} – {localtime(end):%Y-%m-%d %H:%M}"


def _bar_span(start: datetime, end: datetime, week_start: datetime) -> tuple[float, float]:
    total = WEEK.total_seconds()
    left = max((start - week_start).total_seconds(), 0.0)
    right = min((end - week_start).total_seconds(), total)
    return round(100 * left / total, 3), round(100 * max(right - left, 0.0) / total, 3)


def week_timeline(viewer: User, *, week_start: datetime) -> list[NodeRow]:
    """Every present node and GPU with the bookings and maintenance overlapping
    [week_start, week_start + 7 days). A booking's purpose is shown to its team, its holder
    and admins only (as in the API)."""
    week_end = week_start + WEEK
    nodes = list(Node.objects.filter(gone_at__isnull=True).order_by("name"))
    gpus = Gpu.objects.filter(node__in=nodes, present=True).order_by("node__name", "index")
    rows = {n.pk: NodeRow(n.name, n.gpu_model, n.cordoned, n.ready) for n in nodes}
    by_gpu: dict[int, GpuRow] = {}
    for gpu in gpus:
        row = GpuRow(gpu.index, gpu.model, gpu.healthy)
        rows[gpu.node_id].gpus.append(row)
        by_gpu[gpu.pk] = row
    my_teams = set(Membership.objects.filter(user=viewer).values_list("team_id", flat=True))
    slots = (
        ReservationSlot.objects.filter(gpu_id__in=by_gpu, start__lt=week_end, end__gt=week_start)
        .exclude(reservation__status=ReservationStatus.CANCELLED)
        .select_related("reservation__holder", "reservation__team")
        .order_by("start")
    )
    for slot in slots:
        reservation = slot.reservation
        left, width = _bar_span(slot.start, slot.end, week_start)
        if reservation.status not in LIVE_STATUSES:
            kind = "ended"
        elif reservation.holder_id == viewer.pk:
            kind = "mine"
        elif reservation.team_id in my_teams:
            kind = "team"
        else:
            kind = "other"
        who = f"{reservation.holder.get_username()} ({reservation.team.slug})"
        purpose = reservation.purpose if can_see_purpose(viewer, reservation, my_teams) else ""
        title = f"{who} · {local_span(slot.start, slot.end)} · {reservation.status}" + (
            f" · {purpose}" if purpose else ""
        )
        by_gpu[slot.gpu_id].bars.append(
            Bar(left, width, kind, reservation.holder.get_username(), title, reservation.pk)
        )
    windows = MaintenanceWindow.objects.filter(start__lt=week_end, end__gt=week_start).filter(
        Q(node__isnull=True) | Q(node__in=nodes)
    )
    for window in windows:
        left, width = _bar_span(window.start, window.end, week_start)
        title = f"{local_span(window.start, window.end)} · {window.reason}"
        bar = Bar(left, width, "maintenance", window.reason or "maintenance", title)
        targets = rows.values() if window.node_id is None else [rows[window.node_id]]
        for node_row in targets:
            node_row.maintenance.append(bar)
    return list(rows.values())


def now_offset(now: datetime, week_start: datetime) -> float | None:
    """Where ``now`` falls in the week, in percent; None outside it."""
    if not week_start <= now < week_start + WEEK:
        return None
    return _bar_span(week_start, now, week_start)[1]
