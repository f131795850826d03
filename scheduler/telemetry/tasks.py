"""Telemetry's Celery tasks: thin, idempotent."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from scheduler.telemetry import services


@shared_task(name="telemetry.apply_retention", ignore_result=True)
def apply_retention() -> dict[str, int]:
    """Delete raw samples and rollups past their windows (beat: every 10 minutes)."""
    result = services.apply_retention(now=timezone.now())
    return {"samples": result.samples_deleted, "minutes": result.minutes_deleted}
