"""The bookings calendar's data: a rolling span (from a day, N days) of every present GPU as
a row, with the bookings, the jobs holding GPUs (running, or admitted and starting: a GPU
busy with a job never looks free) and the maintenance windows on it, as plain JSON-ready
dicts. The page's timeline (vis-timeline, ``frontend/static/karimasu/calendar.js``) draws
them from ``GET /api/v1/calendar/``; the page's list view (narrow screens, no script)
renders the same items per day.

Read-only and cheap: four queries (nodes, GPUs, the span's booking slots with holders, the
jobs on the cluster, the span's maintenance windows), whatever the number of bookings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.accounts.models import Membership
from scheduler import states
from scheduler.models import (
    LIVE_STATUSES,
    Gpu,
    Job,
    MaintenanceWindow,
    Node,
    ReservationSlot,
    ReservationStatus,
)
from scheduler.services.access import can_see_purpose, visible_jobs

DEFAULT_DAYS = 7  # today and the six days after it
MAX_DAYS = 31
MAX_BACK_DAYS = 92  # how far into the past the calendar may be scrolled


@dataclass(frozen=True)
class Span:
    """``[start, end)``: local midnight of ``first`` for ``days`` days."""

    first: date
    days: int
    start: datetime
    end: datetime


def span_from(first: str | None, days: str | int | None, *, now: datetime) -> Span:
    """The span a request asks for: ``first`` (YYYY-MM-DD, default today in the current time
    zone) for ``days`` days (1..31, default 7). Bad values raise ``ValueError`` with the
    reason (the API answers 400, the page falls back to today)."""
    today = timezone.localtime(now).date()
    chosen = today
    if first:
        try:
            chosen = date.fromisoformat(first)
        except ValueError:
            raise ValueError(_("from must be a date, YYYY-MM-DD.")) from None
        if not today - timedelta(days=MAX_BACK_DAYS) <= chosen <= today + timedelta(days=366):
            raise ValueError(_("The calendar shows from 92 days back to a year ahead."))
    try:
        count = DEFAULT_DAYS if days in (None, "") else int(days)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_DAYS:
        raise ValueError(_("days must be between 1 and 31."))
    start = timezone.make_aware(datetime.combine(chosen, time.min))
    end = timezone.make_aware(datetime.combine(chosen + timedelta(days=count), time.min))
    return Span(chosen, count, start, end)


def local_span(start: datetime, end: datetime) -> str:
    """``2026-11-24 10:00 – 2026-11-24 12:00``: ``start – end`` in the current time zone."""
    return f"{timezone.localtime(start):%Y-%m-%d %H:%M} – {timezone.localtime(end):%Y-%m-%d %H:%M}"


def _gpu_key(node: str, index: int) -> str:
    return f"{node}/{index}"


def calendar_data(viewer: Any, span: Span, *, now: datetime) -> dict[str, Any]:
    """``{"start", "end", "now", "groups", "items"}``. Groups are GPUs (``node/index``);
    items carry ``kind``: ``mine``, ``team`` (a teammate's booking), ``other``, ``ended``
    (given back, reclaimed or over), ``job`` (a running job's GPUs, until its deadline),
    ``starting`` (admitted, taking its GPUs) or ``maintenance``. A booking's purpose is
    shown to its team, its holder and admins only; a job's name to those who may see it."""
    nodes = {n.pk: n for n in Node.objects.filter(gone_at__isnull=True).order_by("name")}
    gpus = list(
        Gpu.objects.filter(node_id__in=list(nodes), present=True).order_by("node__name", "index")
    )
    groups = []
    key_of: dict[int, str] = {}
    by_node: dict[int, list[str]] = {}
    for gpu in gpus:
        node = nodes[gpu.node_id]
        key = _gpu_key(node.name, gpu.index)
        key_of[gpu.pk] = key
        by_node.setdefault(node.pk, []).append(key)
        groups.append(
            {
                "id": key,
                "node": node.name,
                "index": gpu.index,
                "model": gpu.model,
                "healthy": gpu.healthy,
                "cordoned": node.cordoned,
                "ready": node.ready,
            }
        )
    my_teams = set(Membership.objects.filter(user=viewer).values_list("team_id", flat=True))
    items: list[dict[str, Any]] = []
    items += _booking_items(viewer, span, key_of, my_teams, now)
    items += _job_items(viewer, key_of, by_node, nodes, span, now)
    items += _maintenance_items(span, by_node, nodes)
    return {
        "start": span.start.isoformat(),
        "end": span.end.isoformat(),
        "days": span.days,
        "now": now.isoformat(),
        "groups": groups,
        "items": items,
    }


def _booking_items(
    viewer: Any, span: Span, key_of: dict[int, str], my_teams: set[int], now: datetime
) -> list[dict[str, Any]]:
    slots = list(
        ReservationSlot.objects.filter(gpu_id__in=key_of, start__lt=span.end, end__gt=span.start)
        .exclude(reservation__status=ReservationStatus.CANCELLED)
        .select_related("reservation__holder", "reservation__team", "reservation__node", "gpu")
        .order_by("start", "gpu__index")
    )
    indices: dict[int, list[int]] = {}
    for slot in slots:
        indices.setdefault(slot.reservation_id, []).append(slot.gpu.index)
    items = []
    for slot in slots:
        reservation = slot.reservation
        if reservation.status not in LIVE_STATUSES:
            kind = "ended"
        elif reservation.holder_id == viewer.pk:
            kind = "mine"
        elif reservation.team_id in my_teams:
            kind = "team"
        else:
            kind = "other"
        purpose = reservation.purpose if can_see_purpose(viewer, reservation, my_teams) else ""
        items.append(
            {
                "id": f"booking-{reservation.pk}-{slot.gpu.index}",
                "group": key_of[slot.gpu_id],
                "kind": kind,
                "start": slot.start.isoformat(),
                "end": slot.end.isoformat(),
                "holder": reservation.holder.get_username(),
                "team": reservation.team.slug,
                "node": reservation.node.name,
                "gpus": sorted(indices[reservation.pk]),
                "status": reservation.status,
                "purpose": purpose,
                "reservation": reservation.pk,
                "mine": reservation.holder_id == viewer.pk,
            }
        )
    return items


def _job_items(
    viewer: Any,
    key_of: dict[int, str],
    by_node: dict[int, list[str]],
    nodes: dict[int, Node],
    span: Span,
    now: datetime,
) -> list[dict[str, Any]]:
    jobs = Job.objects.filter(status__in=states.ON_CLUSTER, node_id__in=list(nodes)).select_related(
        "owner", "team"
    )
    visible = set(visible_jobs(viewer, Job.objects.all()).values_list("pk", flat=True))
    items = []
    for job in jobs:
        start = job.held_since(now)
        end = job.holds_gpus_until(now)
        if job.node_id is None or end <= span.start or start >= span.end:
            continue
        node = nodes[job.node_id]
        present = set(by_node.get(node.pk, []))
        for index in job.gpu_indices or []:
            key = _gpu_key(node.name, index)
            if key not in present:
                continue
            items.append(
                {
                    "id": f"job-{job.pk}-{index}",
                    "group": key,
                    "kind": "job" if job.status == states.RUNNING else "starting",
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "holder": job.owner.get_username(),
                    "team": job.team.slug,
                    "node": node.name,
                    "gpus": sorted(job.gpu_indices),
                    "status": job.status,
                    "purpose": job.name if job.pk in visible else "",
                    "job": job.pk if job.pk in visible else None,
                    "mine": job.owner_id == viewer.pk,
                }
            )
    return items


def _maintenance_items(
    span: Span, by_node: dict[int, list[str]], nodes: dict[int, Node]
) -> list[dict[str, Any]]:
    windows = MaintenanceWindow.objects.filter(start__lt=span.end, end__gt=span.start).filter(
        Q(node__isnull=True) | Q(node_id__in=list(nodes))
    )
    items = []
    for window in windows:
        targets = list(by_node) if window.node_id is None else [window.node_id]
        for node_id in targets:
            for key in by_node.get(node_id, []):
                items.append(
                    {
                        "id": f"maintenance-{window.pk}-{key}",
                        "group": key,
                        "kind": "maintenance",
                        "start": window.start.isoformat(),
                        "end": window.end.isoformat(),
                        "holder": "",
                        "team": "",
                        "node": nodes[node_id].name,
                        "gpus": [],
                        "status": "maintenance",
                        "purpose": window.reason,
                        "window": window.pk,
                    }
                )
    return items


def agenda(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The list view: per day of the span, the items overlapping it (one entry per booking
    or job, not per GPU), sorted by start: ``[{"day": date, "entries": [item, ...]}]``."""
    start = datetime.fromisoformat(data["start"])
    days = []
    seen: set[tuple[str, str]] = set()
    merged: list[dict[str, Any]] = []
    for item in data["items"]:
        ident = item.get("reservation") or item.get("job") or item.get("window") or item["id"]
        key = (item["kind"], f"{ident}-{item['node'] if item['kind'] == 'maintenance' else ''}")
        if key in seen:
            continue
        seen.add(key)
        merged.append(
            {
                **item,
                "start_at": datetime.fromisoformat(item["start"]),
                "end_at": datetime.fromisoformat(item["end"]),
            }
        )
    merged.sort(key=lambda i: (i["start_at"], i["node"]))
    for offset in range(data["days"]):
        day_start = timezone.localtime(start) + timedelta(days=offset)
        day_start = timezone.make_aware(datetime.combine(day_start.date(), time.min))
        day_end = timezone.make_aware(
            datetime.combine(day_start.date() + timedelta(days=1), time.min)
        )
        entries = [i for i in merged if i["start_at"] < day_end and i["end_at"] > day_start]
        days.append({"day": day_start.date(), "entries": entries})
    return days
