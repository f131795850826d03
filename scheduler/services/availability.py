"""Free GPU time per node, and "borrow now": the reads the booking calendar stands on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from django.utils.translation import gettext as _

from portal.accounts.models import Team, User
from portal.errors import Conflict, InvalidRequest
from scheduler.models import Gpu, Node, Reservation
from scheduler.services.reservations import busy_intervals, reserve_gpus

MAX_SPAN = timedelta(days=31)


@dataclass(frozen=True)
class FreeSlot:
    """From `start` to `end`, these GPUs of `node` are all free (at least the asked count)."""

    node: str
    gpu_model: str
    start: datetime
    end: datetime
    gpus: tuple[int, ...]


def _candidate_nodes(model: str | None) -> list[Node]:
    nodes = Node.objects.filter(gone_at__isnull=True, cordoned=False, ready=True)
    if model:
        nodes = nodes.filter(gpu_model__iexact=model)
    return list(nodes.prefetch_related("gpus").order_by("name"))


def free_slots(
    *, gpus: int, model: str | None, start: datetime, end: datetime, now: datetime
) -> list[FreeSlot]:
    """Windows within [start, end) where a node has at least `gpus` GPUs free together.

    Each window lists the GPUs free throughout it; consecutive pieces are merged while at
    least `gpus` of the same GPUs stay free.
    """
    if gpus < 1:
        raise InvalidRequest(_("Ask for at least one GPU."), details={"gpus": [_("At least 1.")]})
    if end <= start:
        raise InvalidRequest(_("`to` must be after `from`."), details={"to": [_("Before `from`.")]})
    if end - start > MAX_SPAN:
        raise InvalidRequest(
            _("Ask for at most %(days)s days at a time.") % {"days": MAX_SPAN.days},
            details={"to": [_("Too far from `from`.")]},
        )
    slots: list[FreeSlot] = []
    for node in _candidate_nodes(model):
        present = [g for g in node.gpus.all() if g.present and g.healthy]
        if len(present) < gpus:
            continue
        slots.extend(_node_slots(node, present, gpus, start, end, now))
    return slots


def _node_slots(
    node: Node, present: list[Gpu], gpus: int, start: datetime, end: datetime, now: datetime
) -> list[FreeSlot]:
    busy = busy_intervals(present, start, end, now=now)
    cuts = sorted(
        {start, end, *(max(b.start, start) for b in busy), *(min(b.end, end) for b in busy)}
    )
    index_of = {g.pk: g.index for g in present}
    result: list[FreeSlot] = []
    current: tuple[datetime, frozenset[int]] | None = None
    for left, right in pairwise(cuts):
        taken = {index_of[b.gpu_id] for b in busy if b.start < right and b.end > left}
        free = frozenset(index_of.values()) - taken
        if current is not None and len(current[1] & free) >= gpus:
            current = (current[0], current[1] & free)
            continue
        if current is not None:
            result.append(
                FreeSlot(node.name, node.gpu_model, current[0], left, tuple(sorted(current[1])))
            )
            current = None
        if len(free) >= gpus:
            current = (left, free)
    if current is not None:
        result.append(
            FreeSlot(node.name, node.gpu_model, current[0], end, tuple(sorted(current[1])))
        )
    return result


def earliest_slot(
    *, gpus: int, model: str | None, hours: float, now: datetime, horizon: timedelta = MAX_SPAN
) -> FreeSlot | None:
    """The first window of `hours` with `gpus` GPUs free on one node, within the horizon."""
    need = timedelta(hours=hours)
    best: FreeSlot | None = None
    for slot in free_slots(gpus=gpus, model=model, start=now, end=now + horizon, now=now):
        if slot.end - slot.start >= need and (best is None or slot.start < best.start):
            best = slot
    return best


def borrow_now(
    actor: User,
    *,
    team: Team,
    gpus: int,
    model: str | None,
    hours: float,
    purpose: str = "",
    shared_with_team: bool = False,
    now: datetime,
) -> Reservation:
    """Book `gpus` GPUs from now for `hours`, choosing the node like the scheduler packs:
    the node with the fewest free GPUs that still fits (best fit), so whole nodes stay
    free for big jobs. When nothing is free now: Conflict with the earliest slot."""
    if hours <= 0:
        raise InvalidRequest(
            _("Borrow for a positive number of hours."), details={"hours": [_("Must be > 0.")]}
        )
    end = now + timedelta(hours=hours)
    fitting = [
        s
        for s in free_slots(gpus=gpus, model=model, start=now, end=end, now=now)
        if s.start <= now and s.end >= end
    ]
    if not fitting:
        later = earliest_slot(gpus=gpus, model=model, hours=hours, now=now)
        details: dict[str, Any] = {"earliest": None}
        if later is not None:
            details["earliest"] = {
                "node": later.node,
                "start": later.start.isoformat(),
                "gpus": list(later.gpus[:gpus]),
            }
        values = {"gpus": gpus, "model": model, "hours": f"{hours:g}"}
        message = (
            _("No %(gpus)s GPU(s) of %(model)s are free now for %(hours)s h.") % values
            if model
            else _("No %(gpus)s GPU(s) are free now for %(hours)s h.") % values
        )
        if later is not None:
            message += " " + _("The earliest is %(start)s on %(node)s.") % {
                "start": f"{later.start:%Y-%m-%d %H:%M}",
                "node": later.node,
            }
        raise Conflict(
            message,
            code="no_capacity",
            details=details,
        )
    chosen = min(fitting, key=lambda s: (len(s.gpus), s.node))
    node = Node.objects.get(name=chosen.node)
    return reserve_gpus(
        actor,
        team=team,
        node=node,
        gpu_indices=list(chosen.gpus[:gpus]),
        start=now,
        end=end,
        purpose=purpose,
        shared_with_team=shared_with_team,
        now=now,
    )
