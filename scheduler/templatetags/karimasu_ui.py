"""Template filters of the pages: humanised durations and jobs' states drawn by meaning."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from scheduler import job_display, messages

register = template.Library()


@register.filter
def duration(value: Any) -> str:
    """Seconds (or a ``timedelta``) as people say them: "45 s", "20 min", "4 h",
    "1 h 20 min", "2 d 3 h" ("4時間", "1時間20分" in Japanese). Rounded to the minute
    above a minute, to the hour above a day; "" for None."""
    if value is None or value == "":
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return _("%(s)d s") % {"s": seconds}
    minutes = round(seconds / 60)
    if minutes < 60:
        return _("%(m)d min") % {"m": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        if minutes == 0:
            return _("%(h)d h") % {"h": hours}
        return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    hours = round(seconds / 3600)
    days, hours = divmod(hours, 24)
    if hours == 0:
        return _("%(d)d d") % {"d": days}
    return _("%(d)d d %(h)d h") % {"d": days, "h": hours}


@register.filter
def job_state(job: Any) -> dict[str, str]:
    """``{"tone", "text", "raw", "problem"}`` for a job (see ``scheduler.job_display``)."""
    return job_display.job_state(job)


@register.filter
def stored_message(text: Any) -> Any:
    """A message the scheduler stored in English, in the reader's language."""
    return messages.render(text)


@register.filter
def job_status_label(status: str) -> str:
    """A job status code's label, translated ("running" -> "Running", "実行中")."""
    return str(job_display.STATUS_TEXT.get(status, status))


#: A booking's status -> its label (the bookings agenda, the team page).
BOOKING_STATUS_TEXT = {
    "booked": gettext_lazy("Booked"),
    "active": gettext_lazy("Active"),
    "released": gettext_lazy("Released"),
    "expired": gettext_lazy("Expired"),
    "cancelled": gettext_lazy("Cancelled"),
    "reclaimed": gettext_lazy("Reclaimed"),
}


@register.filter
def booking_status_label(status: str) -> str:
    """A booking status code's label, translated ("active" -> "Active", "利用中")."""
    return str(BOOKING_STATUS_TEXT.get(status, status))


@register.filter
def entry_status_label(entry: dict[str, Any]) -> str:
    """The status of a bookings-agenda entry: a job's status or a booking's, translated."""
    status = str(entry.get("status", ""))
    if entry.get("kind") in {"job", "starting"}:
        return job_status_label(status)
    return booking_status_label(status)
