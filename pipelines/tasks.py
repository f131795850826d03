"""Celery tasks of the pipelines: advance a run, and beat's pass over schedules and runs."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from pipelines.services import datasets, mart, runs, schedules
from portal.accounts.models import Team


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


@shared_task(name="pipelines.refresh_mart")
def refresh_mart(team_id: int) -> int:
    """Rebuild a team's data mart after one of its datasets got a new version."""
    return mart.refresh(Team.objects.get(pk=team_id), now=timezone.now()).catalog_version
