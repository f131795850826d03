"""iCalendar feeds of bookings, one per user and one per team, behind a secret URL."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.db.models import Q
from icalendar import Calendar, Event

from portal.accounts.models import Team, User
from scheduler.models import Reservation, ReservationStatus, TeamPolicy
from scheduler.services.booking_policy import policy_of

FEED_PAST = timedelta(days=30)


def feed_secret(owner: User | Team, *, rotate: bool = False) -> str:
    """The owner's feed secret, made on first use; `rotate` replaces it (old URLs stop)."""
    holder = owner if isinstance(owner, User) else policy_of(owner)
    if rotate or not holder.calendar_secret:
        holder.calendar_secret = secrets.token_urlsafe(24)
        # __class__, not type(): a request.user is a lazy proxy that only forwards the former.
        holder.__class__.objects.filter(pk=holder.pk).update(calendar_secret=holder.calendar_secret)
    return holder.calendar_secret


def rotate_after_leaving(sender: object, instance: object, **kwargs: object) -> None:
    """post_delete of a Membership: a new secret for the team's feed, if it has one."""
    team_id = getattr(instance, "team_id", None)
    if team_id is None:
        return
    policy = TeamPolicy.objects.filter(team_id=team_id).exclude(calendar_secret="").first()
    if policy is not None:
        feed_secret(policy.team, rotate=True)


def feed_for_secret(secret: str, *, now: datetime) -> bytes | None:
    """The .ics body for a secret, or None when no feed has it."""
    if len(secret) < 16:
        return None
    user = User.objects.filter(calendar_secret=secret, is_active=True).first()
    if user is not None:
        rows = Reservation.objects.filter(holder=user)
        return _calendar(f"Karimasu: {user.get_username()}", rows, now, show_purpose=True)
    policy = TeamPolicy.objects.select_related("team").filter(calendar_secret=secret).first()
    if policy is not None:
        rows = Reservation.objects.filter(team=policy.team)
        return _calendar(f"Karimasu: {policy.team.name}", rows, now, show_purpose=True)
    return None


def _calendar(name: str, rows, now: datetime, *, show_purpose: bool) -> bytes:  # type: ignore[no-untyped-def]
    calendar = Calendar()
    calendar.add("prodid", "-//Karimasu//GPU bookings//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", name)
    shown = (
        rows.filter(Q(end__gte=now - FEED_PAST))
        .exclude(status=ReservationStatus.CANCELLED)
        .select_related("holder", "node")
        .prefetch_related("slots__gpu")
    )
    for res in shown:
        gpus = sorted(slot.gpu.index for slot in res.slots.all())
        event = Event()
        event.add("uid", f"reservation-{res.pk}@karimasu")
        event.add("dtstamp", now)
        event.add("dtstart", res.start)
        event.add("dtend", res.end)
        event.add(
            "summary",
            f"{res.holder.get_username()}: {len(gpus)} × "
            f"{res.node.gpu_model or 'GPU'} on {res.node.name}",
        )
        description = f"GPUs {', '.join(map(str, gpus))} · {res.status}"
        if show_purpose and res.purpose:
            description += f"\n{res.purpose}"
        event.add("description", description)
        event.add("location", res.node.name)
        event.add("status", "CONFIRMED")
        calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical
