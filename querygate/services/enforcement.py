"""Enforcement: stopping queries. A cancel or kill is recorded, then signalled to the
engine; the watchdog kills what passed its deadline, escalates to terminate what did not
stop, and marks lost what no executor reports on."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from portal.errors import Conflict
from querygate.engines import Engine
from querygate.errors import EngineError
from querygate.messages import KILL_UNREPORTED, LOST_QUEUED, LOST_SILENT, stored_error
from querygate.models import ACTIVE_STATUSES, Query, QueryStatus
from querygate.services.access import access_query
from querygate.services.lifecycle import move
from querygate.services.warehouses import engine_of

log = logging.getLogger("karimasu.querygate")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def request_kill(
    query_id: int,
    *,
    by: Any,
    reason: str,
    now: datetime,
    signal: bool = True,
    engine: Engine | None = None,
) -> Query:
    """Record who stops a query and why, then signal the engine. A queued query is
    cancelled at once; a running one is interrupted (PostgreSQL: ``pg_cancel_backend``
    now; DuckDB: by its executor's watcher within one poll)."""
    query = Query.objects.select_related("warehouse").get(pk=query_id)
    own = by is not None and by.pk == query.user_id
    if move(
        query_id,
        QueryStatus.QUEUED,
        QueryStatus.CANCELLED if own else QueryStatus.KILLED,
        killed_by=by,
        kill_reason=reason,
        cancel_requested_at=now,
        finished_at=now,
    ):
        return Query.objects.get(pk=query_id)
    first = Query.objects.filter(
        pk=query_id, status=QueryStatus.RUNNING, cancel_requested_at__isnull=True
    ).update(killed_by=by, kill_reason=reason, cancel_requested_at=now)
    query.refresh_from_db()
    if query.status == QueryStatus.RUNNING and signal and query.engine_handle:
        try:
            (engine or engine_of(query.warehouse)).cancel(query.engine_handle)
        except EngineError as error:
            log.warning("query.cancel_signal_failed id=%s %s", query_id, error)
    if first:
        log.info(
            "query.kill_requested id=%s by=%s reason=%s",
            query_id,
            getattr(by, "username", "watchdog"),
            reason,
        )
    return query


def cancel_query(user: Any, query_id: int, *, now: datetime, reason: str = "") -> Query:
    """The owner cancels their query; an admin kills anyone's (``access_query``: others get
    404, not theirs to see, or 403, a teammate's they can see)."""
    query = access_query(user, query_id, "cancel")
    if query.status not in ACTIVE_STATUSES:
        raise Conflict(
            _("The query is already %(status)s.") % {"status": query.status}, code="not_running"
        )
    default = "cancelled by its owner" if query.user_id == user.pk else "killed by an admin"
    return request_kill(query_id, by=user, reason=reason or default, now=now)


def enforce_budgets(*, now: datetime, engines: dict[int, Engine] | None = None) -> dict[str, int]:
    """The watchdog: kill running queries past their deadline; escalate to terminate a
    PostgreSQL backend still running ``QUERYGATE_KILL_GRACE_SECONDS`` after the cancel;
    mark lost those whose executor vanished (still running long after the grace)."""
    engines = engines or {}
    grace = timedelta(seconds=_setting("QUERYGATE_KILL_GRACE_SECONDS", 10.0))
    counts = {"killed": 0, "terminated": 0, "lost": 0}
    running = Query.objects.filter(status=QueryStatus.RUNNING).select_related("warehouse")
    for query in running.filter(deadline__lt=now, cancel_requested_at__isnull=True):
        engine = engines.get(query.warehouse_id)
        request_kill(
            query.pk, by=None, reason="runtime budget exceeded (watchdog)", now=now, engine=engine
        )
        counts["killed"] += 1
    for query in running.filter(cancel_requested_at__lt=now - grace, terminated_at__isnull=True):
        engine = engines.get(query.warehouse_id) or engine_of(query.warehouse)
        try:
            if engine.cancel(query.engine_handle, terminate=True):
                counts["terminated"] += 1
        except EngineError as error:
            log.warning("query.terminate_failed id=%s %s", query.pk, error)
        Query.objects.filter(pk=query.pk).update(terminated_at=now)
    for query in running.filter(cancel_requested_at__lt=now - 3 * grace):
        counts["lost"] += move(
            query.pk,
            QueryStatus.RUNNING,
            QueryStatus.KILLED,
            finished_at=now,
            error=stored_error(KILL_UNREPORTED),
        )
    counts["lost"] += _reap_lost(now)
    return counts


def _reap_lost(now: datetime) -> int:
    """Queued queries no worker started within ``QUERYGATE_MAX_QUEUE_SECONDS`` and running
    ones whose executor went silent for ``QUERYGATE_HEARTBEAT_TIMEOUT_SECONDS`` become
    ``lost``, freeing the user's slot. A late delivery then finds the query lost and does
    not run it."""
    queued_limit = timedelta(seconds=_setting("QUERYGATE_MAX_QUEUE_SECONDS", 300.0))
    silent_limit = timedelta(seconds=_setting("QUERYGATE_HEARTBEAT_TIMEOUT_SECONDS", 30.0))

    def mark_lost(rows: Any, source: str, message: dict[str, Any]) -> int:
        error = {"kind": "lost", **message}
        return move(rows, source, QueryStatus.LOST, finished_at=now, error=error)

    lost = mark_lost(
        Query.objects.filter(created_at__lt=now - queued_limit),
        QueryStatus.QUEUED,
        stored_error(LOST_QUEUED, seconds=f"{queued_limit.total_seconds():g}"),
    )
    # A query being killed is left to the kill's escalation above.
    lost += mark_lost(
        Query.objects.filter(heartbeat_at__lt=now - silent_limit, cancel_requested_at__isnull=True),
        QueryStatus.RUNNING,
        stored_error(LOST_SILENT, seconds=f"{silent_limit.total_seconds():g}"),
    )
    return lost
