"""Tell people about bookings: email to the holder, a Slack-compatible webhook per team,
each in its recipient's language."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from scheduler.models import Reservation, TeamPolicy
from scheduler.services.webhooks import post_webhook

log = logging.getLogger("karimasu.notify")


def reservation_message(event: str, reservation: Reservation, language: str) -> str:
    """One line, e.g. "alice booked 2 × Tesla-V100 on tesla-01 until 18:00"."""
    with translation.override(language):
        values = {
            "user": reservation.holder.get_username(),
            "count": len(reservation.slots.all()),
            "model": reservation.node.gpu_model or "GPU",
            "node": reservation.node.name,
            "start": timezone.localtime(reservation.start).strftime("%m-%d %H:%M"),
            "end": timezone.localtime(reservation.end).strftime("%m-%d %H:%M"),
        }
        templates = {
            "booked": _(
                "%(user)s booked %(count)s × %(model)s on %(node)s from %(start)s until %(end)s"
            ),
            "changed": _(
                "%(user)s's booking of %(count)s × %(model)s on %(node)s now runs "
                "%(start)s – %(end)s"
            ),
            "released": _("%(user)s gave back %(count)s × %(model)s on %(node)s"),
            "cancelled": _(
                "%(user)s cancelled the booking of %(count)s × %(model)s on "
                "%(node)s (%(start)s – %(end)s)"
            ),
            "idle_notice": _(
                "Use it or lose it: %(user)s's %(count)s × %(model)s on %(node)s "
                "have been idle; the booking will be given back if they stay idle"
            ),
            "reclaimed": _(
                "%(user)s's idle booking of %(count)s × %(model)s on %(node)s was "
                "given back to the pool"
            ),
            "expired": _("%(user)s's booking of %(count)s × %(model)s on %(node)s ended"),
            "maintenance": _(
                "Maintenance on %(node)s overlaps %(user)s's booking of %(count)s × "
                "%(model)s (%(start)s – %(end)s): the GPUs may be unavailable then"
            ),
        }
        return templates.get(event, templates["changed"]) % values


def send_reservation_notice(event: str, reservation_id: int) -> dict[str, bool]:
    """Email the holder and post to the team's webhook. Failures are logged, not raised:
    a notice must never undo or block a booking."""
    reservation = (
        Reservation.objects.select_related("holder", "team", "node")
        .prefetch_related("slots")
        .filter(pk=reservation_id)
        .first()
    )
    if reservation is None:
        return {"email": False, "webhook": False}
    policy = TeamPolicy.objects.filter(team=reservation.team).first()
    sent = {"email": False, "webhook": False}
    holder = reservation.holder
    if holder.email and (policy is None or policy.notify_email):
        text = reservation_message(event, reservation, holder.language)
        try:
            send_mail(f"[Karimasu] {text}", text, settings.DEFAULT_FROM_EMAIL, [holder.email])
            sent["email"] = True
        except OSError as exc:
            log.warning("notify.email_failed reservation=%s %s", reservation_id, exc)
    if policy is not None and policy.slack_webhook_url:
        text = reservation_message(event, reservation, policy.webhook_language)
        sent["webhook"] = post_webhook(policy.slack_webhook_url, text)
    return sent
