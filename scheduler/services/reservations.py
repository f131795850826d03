"""Booking GPUs: the one write path for reservations, and the availability they rest on.

Every function takes `now`. Refusals are portal.errors exceptions: `Conflict` (409) with the
conflicting bookings in `details["conflicts"]`, `PolicyViolation` (403) naming the rule,
`InvalidRequest` (400), `NotPermitted` (403).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from portal.accounts.models import Team, User
from portal.errors import Conflict, InvalidRequest, NotFoundError, NotPermitted
from scheduler import reservation_states, states
from scheduler.models import (
    LIVE_STATUSES,
    Gpu,
    Job,
    MaintenanceWindow,
    Node,
    Reservation,
    ReservationSlot,
    ReservationStatus,
)
from scheduler.models.jobs import gpus_by_node, on_nodes
from scheduler.services.access import can_book_for, can_manage_reservation
from scheduler.services.booking_policy import PolicyViolation, check_policy
from scheduler.services.jobs import request_cycle

log = logging.getLogger("karimasu.reservations")

OVERLAP_CONSTRAINT = "reservationslot_no_overlap"
# A start this far in the past is taken as "now" (clocks and slow forms), not refused.
START_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Busy:
    """One interval in which a GPU is not free, and who holds it."""

    gpu_id: int
    start: datetime
    end: datetime
    kind: str  # "reservation" | "job" | "maintenance"
    ref: int | None
    holder: str
    team: str


# --- who may do what ------------------------------------------------------------------------


# --- occupancy -----------------------------------------------------------------------------


def busy_intervals(
    gpus: Iterable[Gpu],
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    exclude_reservation: int | None = None,
) -> list[Busy]:
    """Everything that keeps these GPUs from being booked in [start, end): active
    reservation slots, jobs holding them (until their max runtime ends), maintenance."""
    gpus = list(gpus)
    by_id = {g.pk: g for g in gpus}
    result: list[Busy] = []
    slots = ReservationSlot.objects.filter(
        gpu_id__in=by_id, active=True, start__lt=end, end__gt=start
    ).select_related("reservation__holder", "reservation__team")
    if exclude_reservation is not None:
        slots = slots.exclude(reservation_id=exclude_reservation)
    for slot in slots:
        res = slot.reservation
        result.append(
            Busy(
                slot.gpu_id,
                slot.start,
                slot.end,
                "reservation",
                res.pk,
                res.holder.get_username(),
                res.team.slug,
            )
        )
    node_ids = {g.node_id for g in gpus}
    jobs = Job.objects.filter(on_nodes(node_ids), status__in=states.ON_CLUSTER).select_related(
        "owner", "team", "node"
    )
    node_names = dict(Node.objects.filter(pk__in=node_ids).values_list("pk", "name"))
    if exclude_reservation is not None:
        # A session of the booking lives inside it and ends with it: it never blocks
        # changing the booking (docs/sessions.md).
        jobs = jobs.exclude(session__reservation_id=exclude_reservation)
    for job in jobs:
        began = job.held_since(now)
        job_end = max(job.holds_gpus_until(now), now)
        if not (began < end and job_end > start):
            continue
        held = gpus_by_node(job.node.name if job.node else None, job.gpu_indices, job.placements)
        for gpu in gpus:
            if gpu.index in held.get(node_names.get(gpu.node_id, ""), ()):
                result.append(
                    Busy(
                        gpu.pk,
                        began,
                        job_end,
                        "job",
                        job.pk,
                        job.owner.get_username(),
                        job.team.slug,
                    )
                )
    windows = MaintenanceWindow.objects.filter(
        Q(node_id__in=node_ids) | Q(node__isnull=True), start__lt=end, end__gt=start
    )
    for window in windows:
        for gpu in gpus:
            if window.node_id in (None, gpu.node_id):
                result.append(
                    Busy(
                        gpu.pk,
                        window.start,
                        window.end,
                        "maintenance",
                        window.pk,
                        "",
                        window.reason,
                    )
                )
    return result


def _conflict_details(busy: list[Busy], gpus: dict[int, Gpu]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, int | None], dict[str, Any]] = {}
    for item in busy:
        entry = seen.setdefault(
            (item.kind, item.ref),
            {
                "kind": item.kind,
                "id": item.ref,
                "holder": item.holder,
                "team": item.team,
                "start": item.start.isoformat(),
                "end": item.end.isoformat(),
                "gpus": [],
            },
        )
        entry["gpus"].append(gpus[item.gpu_id].index)
    return [dict(e, gpus=sorted(e["gpus"])) for e in seen.values()]


def _check_node(node: Node) -> None:
    if node.gone_at is not None:
        raise InvalidRequest(_("%(node)s is no longer in the cluster.") % {"node": node.name})
    if node.cordoned:
        raise PolicyViolation(
            _("%(node)s is cordoned (drained for maintenance).") % {"node": node.name},
            details={"rule": "cordoned"},
        )


def _window(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    if start < now - START_TOLERANCE:
        raise InvalidRequest(
            _("A booking cannot start in the past."),
            details={"start": [_("Must not be in the past.")]},
        )
    start = max(start, now)
    if end <= start:
        raise InvalidRequest(
            _("A booking must end after it starts."), details={"end": [_("Must be after start.")]}
        )
    return start, end


# --- writes -----------------------------------------------------------------------------------


def reserve_gpus(
    actor: User,
    *,
    team: Team,
    node: Node,
    gpu_indices: list[int],
    start: datetime,
    end: datetime,
    purpose: str = "",
    shared_with_team: bool = False,
    now: datetime,
) -> Reservation:
    """Book these GPUs of one node for [start, end), charged to `team`; exclusive to the
    holder's jobs unless ``shared_with_team``."""
    if not can_book_for(actor, team):
        raise NotPermitted(_("You are not a member of %(team)s.") % {"team": team.slug})
    indices = sorted(set(gpu_indices))
    if not indices:
        raise InvalidRequest(_("Book at least one GPU."), details={"gpus": [_("Empty.")]})
    start, end = _window(start, end, now)
    _check_node(node)
    gpus = {g.pk: g for g in Gpu.objects.filter(node=node, index__in=indices, present=True)}
    missing = set(indices) - {g.index for g in gpus.values()}
    if missing:
        raise InvalidRequest(
            _("%(node)s has no GPU %(gpus)s.")
            % {"node": node.name, "gpus": ", ".join(map(str, sorted(missing)))},
            details={"gpus": sorted(missing)},
        )
    try:
        with transaction.atomic():
            check_policy(actor, team, len(indices), start, end, now=now)
            busy = busy_intervals(gpus.values(), start, end, now=now)
            if busy:
                raise Conflict(
                    _("Those GPUs are not free for that whole time."),
                    details={"conflicts": _conflict_details(busy, gpus)},
                )
            reservation = Reservation.objects.create(
                holder=actor,
                team=team,
                node=node,
                start=start,
                end=end,
                purpose=purpose,
                shared_with_team=shared_with_team,
                created_at=now,
                status=_initial(
                    ReservationStatus.ACTIVE if start <= now else ReservationStatus.BOOKED
                ),
            )
            ReservationSlot.objects.bulk_create(
                ReservationSlot(reservation=reservation, gpu=gpu, start=start, end=end)
                for gpu in gpus.values()
            )
    except IntegrityError as exc:
        if OVERLAP_CONSTRAINT not in str(exc):
            raise
        # Lost a race that the database caught: report who won.
        busy = busy_intervals(gpus.values(), start, end, now=now)
        raise Conflict(
            _("Those GPUs were just booked by someone else."),
            details={"conflicts": _conflict_details(busy, gpus)},
        ) from exc
    log.info(
        "reservation.booked id=%s user=%s team=%s node=%s gpus=%s start=%s end=%s",
        reservation.pk,
        actor.pk,
        team.slug,
        node.name,
        indices,
        start.isoformat(),
        end.isoformat(),
    )
    notify_after_commit("booked", reservation)
    return reservation


def change_reservation(
    actor: User,
    reservation: Reservation,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime,
) -> Reservation:
    """Extend or shorten (the end), or move the start of a booking that has not begun."""
    _require_manage(actor, reservation)
    if reservation.status not in LIVE_STATUSES or reservation.end <= now:
        raise Conflict(_("This booking is over and cannot be changed."))
    new_start = start or reservation.start
    if start is not None and reservation.start <= now and start != reservation.start:
        raise InvalidRequest(
            _("A booking that has begun cannot move its start."),
            details={"start": [_("Already begun.")]},
        )
    new_end = end or reservation.end
    if start is not None and new_start != reservation.start:
        new_start, new_end = _window(new_start, new_end, now)
    elif new_end <= max(new_start, now):
        raise InvalidRequest(
            _("The end must be in the future and after the start."),
            details={"end": [_("Too early.")]},
        )
    slots = list(reservation.slots.filter(active=True).select_related("gpu"))
    gpus = {s.gpu_id: s.gpu for s in slots}
    try:
        with transaction.atomic():
            check_policy(
                reservation.holder,
                reservation.team,
                len(slots),
                new_start,
                new_end,
                now=now,
                exclude_reservation=reservation.pk,
            )
            busy = busy_intervals(
                gpus.values(), new_start, new_end, now=now, exclude_reservation=reservation.pk
            )
            if busy:
                raise Conflict(
                    _("The GPUs are not free for the new time."),
                    details={"conflicts": _conflict_details(busy, gpus)},
                )
            Reservation.objects.filter(pk=reservation.pk).update(start=new_start, end=new_end)
            ReservationSlot.objects.filter(reservation=reservation, active=True).update(
                start=new_start, end=new_end
            )
    except IntegrityError as exc:
        if OVERLAP_CONSTRAINT not in str(exc):
            raise
        raise Conflict(_("The GPUs were just booked by someone else.")) from exc
    reservation.start, reservation.end = new_start, new_end
    log.info(
        "reservation.changed id=%s start=%s end=%s by=%s",
        reservation.pk,
        new_start.isoformat(),
        new_end.isoformat(),
        actor.pk,
    )
    notify_after_commit("changed", reservation)
    return reservation


def end_reservation(
    actor: User | None,
    reservation: Reservation,
    *,
    now: datetime,
    status: str = ReservationStatus.RELEASED,
) -> Reservation:
    """Give the GPUs back now: released (by a person) or reclaimed (idle); a booking that
    has not begun is cancelled instead. Ending twice is not an error."""
    if actor is not None:
        _require_manage(actor, reservation)
    if reservation.status not in LIVE_STATUSES:
        return reservation
    with transaction.atomic():
        locked = Reservation.objects.select_for_update().get(pk=reservation.pk)
        if locked.status not in LIVE_STATUSES:
            return locked
        if locked.start > now:
            move_reservation(locked, ReservationStatus.CANCELLED, ended_at=now)
            ReservationSlot.objects.filter(reservation=locked).update(active=False)
        else:
            if locked.status == ReservationStatus.BOOKED:  # begun; the beat has not said so
                move_reservation(locked, ReservationStatus.ACTIVE)
            end = max(now, locked.start + timedelta(seconds=1))
            move_reservation(locked, status, end=end, ended_at=now)
            ReservationSlot.objects.filter(reservation=locked, active=True).update(end=end)
    log.info(
        "reservation.ended id=%s status=%s by=%s",
        locked.pk,
        locked.status,
        actor.pk if actor else "system",
    )
    notify_after_commit(locked.status, locked)
    return locked


def advance_reservations(*, now: datetime) -> int:
    """Beat: booked -> active at start, live -> expired at end. Returns rows changed."""
    rows = Reservation.objects.all()
    started = _move_rows(
        rows.filter(start__lte=now, end__gt=now), ReservationStatus.BOOKED, ReservationStatus.ACTIVE
    )
    ended = rows.filter(end__lte=now)
    expired = sum(_move_rows(ended, live, ReservationStatus.EXPIRED) for live in LIVE_STATUSES)
    return started + expired


def move_reservation(reservation: Reservation, target: str, **fields: Any) -> None:
    """The one writer of ``Reservation.status``: ``reservation`` (whose ``status`` the caller
    read under a row lock) moves to ``target`` along ``reservation_states.ALLOWED``, with
    ``fields`` in the same UPDATE; the object is updated to match."""
    if (
        _move_rows(
            Reservation.objects.filter(pk=reservation.pk), reservation.status, target, **fields
        )
        != 1
    ):
        raise Conflict(
            _("Booking %(id)s changed underneath (expected %(status)s).")
            % {"id": reservation.pk, "status": reservation.status}
        )
    reservation.status = target
    for name, value in fields.items():
        setattr(reservation, name, value)


def _move_rows(rows: Any, source: str, target: str, **fields: Any) -> int:
    if not reservation_states.can_transition(source, target):
        raise Conflict(
            _("A booking cannot go from %(from)s to %(to)s.") % {"from": source, "to": target}
        )
    return int(rows.filter(status=source).update(status=target, **fields))


def _initial(status: str) -> str:
    if status not in reservation_states.INITIAL:
        raise Conflict(_("A booking cannot be created %(status)s.") % {"status": status})
    return status


def _require_manage(actor: User, reservation: Reservation) -> None:
    if not can_manage_reservation(actor, reservation):
        raise NotPermitted(
            _("Only the holder, the team's leads and admins can change this booking.")
        )


def notify_after_commit(event: str, reservation: Reservation) -> None:
    """Once the transaction commits: tell the holder and the team; for anything but a
    notice, also run a scheduling cycle (GPUs were booked or given back)."""
    from scheduler import tasks  # tasks import services; import here to avoid a cycle

    reservation_id = reservation.pk
    transaction.on_commit(lambda: tasks.notify_reservation.delay(event, reservation_id))
    if event != "idle_notice":
        request_cycle()  # GPUs were booked or given back: the queue may move


def bookings_in_maintenance(window: MaintenanceWindow) -> list[Reservation]:
    """The live bookings a maintenance window overlaps (on its node, or any node when the
    window has none), soonest first."""
    bookings = Reservation.objects.filter(
        status__in=LIVE_STATUSES, start__lt=window.end, end__gt=window.start
    )
    if window.node_id is not None:
        bookings = bookings.filter(node_id=window.node_id)
    return list(
        bookings.select_related("holder", "team", "node")
        .prefetch_related("slots__gpu")
        .order_by("start", "pk")
    )


def warn_of_maintenance(window: MaintenanceWindow) -> list[Reservation]:
    """A maintenance window was saved: tell the holder (and team) of every live booking it
    overlaps, once the transaction commits, and return those bookings. The bookings are
    left as they are: the admin decides whether to move the window or end them."""
    from scheduler import tasks  # tasks import services; import here to avoid a cycle

    affected = bookings_in_maintenance(window)
    for reservation in affected:
        transaction.on_commit(
            partial(tasks.notify_reservation.delay, "maintenance", reservation.pk)
        )
    return affected


def get_reservation(pk: int) -> Reservation:
    reservation = Reservation.objects.select_related("holder", "team", "node").filter(pk=pk).first()
    if reservation is None:
        raise NotFoundError(_("No such booking."))
    return reservation
