"""Template filters of the pipeline pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

register = template.Library()

_LABELS = {
    "queued": _("queued"),
    "pending": _("waiting for inputs"),
    "running": _("running"),
    "retrying": _("retrying"),
    "succeeded": _("succeeded"),
    "cached": _("cache hit"),
    "failed": _("failed"),
    "skipped": _("skipped"),
    "cancelled": _("cancelled"),
}


@register.filter
def get_item(mapping: Mapping[str, Any], key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


@register.filter
def step_state(status: str) -> str:
    """A run's or a step's state in the reader's language."""
    return str(_LABELS.get(status, status))
