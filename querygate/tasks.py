"""Celery tasks of the query gate: ids in, one service call, safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from querygate.errors import EngineError

log = logging.getLogger("karimasu.querygate")


@shared_task(name="querygate.run_query", ignore_result=True, acks_late=False)
def run_query(query_id: int) -> str:
    """Run a queued query. A second delivery finds it claimed and does nothing. Not acked
    late: a redelivered long query after a worker crash would run twice on the warehouse;
    the watchdog marks such a lost query instead."""
    from querygate.services.execution import execute_query

    return execute_query(query_id).status


@shared_task(name="querygate.enforce_budgets", ignore_result=True)
def enforce_budgets() -> dict[str, int]:
    """Periodic (beat): the watchdog kills queries past their runtime budget."""
    from querygate.services.enforcement import enforce_budgets as enforce

    return enforce(now=timezone.now())


@shared_task(name="querygate.purge_results", ignore_result=True)
def purge_results() -> dict[str, int]:
    """Periodic (beat, hourly): delete result files past QUERYGATE_RESULTS_RETENTION_HOURS."""
    from querygate.services.results import purge_results as purge

    return purge(now=timezone.now())


@shared_task(name="querygate.refresh_catalogs", ignore_result=True)
def refresh_catalogs() -> dict[str, int]:
    """Periodic (beat): refresh every enabled warehouse's catalog; one failing warehouse is
    logged and the others still refresh."""
    from querygate.models import Warehouse
    from querygate.services.catalog import refresh_catalog

    versions = {}
    for warehouse in Warehouse.objects.filter(enabled=True):
        try:
            versions[warehouse.name] = refresh_catalog(warehouse.pk, now=timezone.now())
        except EngineError as error:
            log.warning("catalog.refresh_failed warehouse=%s %s", warehouse.name, error)
    return versions


@shared_task(
    name="querygate.refresh_catalog",
    ignore_result=True,
    autoretry_for=(EngineError,),
    retry_backoff=True,
    max_retries=3,
)
def refresh_catalog(warehouse_id: int) -> int:
    """On demand (the admin's refresh button, the API)."""
    from querygate.services.catalog import refresh_catalog as refresh

    return refresh(warehouse_id, now=timezone.now())
