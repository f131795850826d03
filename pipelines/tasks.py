"""Celery tasks of the pipelines: advance a run, and beat's pass over schedules and runs."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from pipelines.services import datasets, runs, schedules


@shared_task(name="pipelines.advance_run", acks_late=True)
def advance_run(run_id: int) -> str:
    return runs.advance(run_id, now=timezone.now()).status


@shared_task(name="pipelines.tick")
def tick() -> dict[str, int]:
    """Every few seconds: start what is due, and advance every active run (a run whose
    worker died mid-way continues here)."""
    now = timezone.now()
    started = schedules.run_due(now=now)
    active = runs.active_runs()
    for run_id in active:
        runs.advance(run_id, now=now)
    return {"started": len(started), "advanced": len(active)}


@shared_task(name="pipelines.purge")
def purge() -> dict[str, int]:
    return datasets.purge(now=timezone.now())
