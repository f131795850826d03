"""Query life: submit (analyze, decide, audit row first), execute under a budget, cancel
and kill, and the watchdog. ``now`` and the engine are injected; only this module writes
``Query.status``.

Decisions (see docs/querygate.md): *reject* answers 400 ``query_rejected`` (or
``sql_error`` with line and column); *warn* answers 409 ``acknowledgement_required`` until
the request says ``acknowledge_warnings: true``; a lead of the query's team or an admin may
run a rejected query with ``override_justification`` unless a safety finding (parse error,
unknown name, escape hatch, write) rejected it. Every request leaves an audit row.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.accounts.models import Team
from portal.accounts.services import is_team_lead
from portal.errors import Conflict, InvalidRequest, NotFoundError, NotPermitted
from querygate.analysis import Report, Severity
from querygate.analysis.policy import SAFETY_RULES  # the one list: severities and overrides
from querygate.engines import Engine, Session
from querygate.engines.base import ResultSet
from querygate.errors import (
    AcknowledgementRequired,
    BudgetExceeded,
    EngineError,
    QueryInterrupted,
    QueryRejected,
    SqlError,
)
from querygate.models import ACTIVE_STATUSES, Query, QueryStatus
from querygate.services import results
from querygate.services.warehouses import (
    Access,
    access_for,
    analysis_of,
    engine_explain,
    engine_of,
    engine_statement,
    fingerprint,
    get_warehouse,
)

log = logging.getLogger("karimasu.querygate")

_COUNTED = (
    QueryStatus.QUEUED,
    QueryStatus.RUNNING,
    QueryStatus.SUCCEEDED,
    QueryStatus.FAILED,
    QueryStatus.CANCELLED,
    QueryStatus.KILLED,
)


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def submit_query(
    user: Any,
    warehouse_name: str,
    sql: str,
    *,
    now: datetime,
    acknowledge_warnings: bool = False,
    override_justification: str = "",
    team: str | None = None,
    engine: Engine | None = None,
    inline: bool | None = None,
) -> Query:
    """Analyze, decide, write the audit row, then run (inline when small, else Celery).

    Raises ``SqlError``/``QueryRejected``/``AcknowledgementRequired``/``BudgetExceeded``
    *after* the audit row is committed; ``details.query_id`` names it."""
    warehouse = get_warehouse(warehouse_name)
    access = access_for(user, warehouse, team)
    try:
        report, analysis = analysis_of(access, sql, explain=False)
    except Exception as error:  # fail closed, and on the record
        _analysis_crashed(user, access, sql, now, error)
    status, reasons, overridden, refusal = _decide(
        user, access, report, acknowledge_warnings, override_justification
    )
    estimate = report.estimate.bytes_scanned if report.estimate else 0
    key = _cache_key(report, warehouse)
    with transaction.atomic():
        if status == QueryStatus.QUEUED:
            # Budgets are checked and the row written under a lock on the user (and team):
            # two concurrent submissions cannot both see the last free slot.
            _lock_budget_holders(user, access)
            refusal = _budget_refusal(user, access, estimate, now)
            if refusal is not None:
                status, reasons = QueryStatus.REJECTED, [*reasons, str(refusal)]
        cached = _cached_result(warehouse, key, now) if status == QueryStatus.QUEUED else None
        query = Query.objects.create(
            user=user,
            team=access.team,
            warehouse=warehouse,
            sql=sql,
            fingerprint=fingerprint(sql, warehouse.sql_dialect),
            statement_type=analysis["statement_type"] or "",
            analysis=analysis,
            decision=report.decision.value,
            reasons=reasons,
            acknowledged=acknowledge_warnings and report.decision == "warn",
            override_by=user if overridden else None,
            override_justification=override_justification if overridden else "",
            catalog_version=warehouse.catalog_version,
            bytes_estimate=estimate,
            status=status,
            runtime_budget_s=access.max_runtime_s,
            created_at=now,
            finished_at=now if status not in ACTIVE_STATUSES else None,
            cache_key=key,
        )
        if cached is not None:
            _serve_from_cache(query, cached, now)
    log.info(
        "query.submitted id=%s user=%s warehouse=%s decision=%s status=%s",
        query.pk,
        user.username,
        warehouse.name,
        report.decision.value,
        status,
    )
    _raise_refusal(query, report, analysis, refusal)
    if cached is not None:
        return query
    _add_explain(query, access, report)
    small = report.estimate is not None and report.estimate.cost_class == "small"
    if inline if inline is not None else small:
        return execute_query(query.pk, engine=engine, inline=True)
    _enqueue(query.pk)
    return query


def _analysis_crashed(
    user: Any, access: Access, sql: str, now: datetime, error: Exception
) -> NoReturn:
    """The analysis itself failed (a bug, or an input nobody foresaw): the request is refused
    and the refusal is on record like any other."""
    log.exception("query.analysis_crashed user=%s warehouse=%s", user.username, access.warehouse)
    message = _("The query gate could not analyze this query, so it will not run it.")
    query = Query.objects.create(
        user=user,
        team=access.team,
        warehouse=access.warehouse,
        sql=sql,
        fingerprint=hashlib.sha256(" ".join(sql.split()).encode()).hexdigest(),
        analysis={},
        decision="reject",
        reasons=[str(message)],
        status=QueryStatus.REJECTED,
        created_at=now,
        finished_at=now,
        error={"kind": "analysis_failed", "message": type(error).__name__},
    )
    raise QueryRejected(
        str(message), code="analysis_failed", details={"query_id": query.pk}
    ) from None


def _add_explain(query: Query, access: Access, report: Report) -> None:
    """The engine's EXPLAIN of an allowed SELECT, asked for once the audit row exists."""
    if report.statement_kind != "select" or query.status != QueryStatus.QUEUED:
        return
    if query.analysis.get("estimate") is None:
        return
    query.analysis.update(engine_explain(access.warehouse, query.sql))
    if query.analysis["explain_status"] == "ok":
        query.analysis["estimate"]["source"] += "+explain"
    Query.objects.filter(pk=query.pk).update(analysis=query.analysis)


def _cache_key(report: Report, warehouse: Any) -> str:
    if report.statement_kind != "select" or not report.normalized_sql:
        return ""
    text = f"{report.normalized_sql}\x00{warehouse.catalog_version}\x00{warehouse.row_cap}"
    return hashlib.sha256(text.encode()).hexdigest()


def _cached_result(warehouse: Any, key: str, now: datetime) -> Query | None:
    """The newest successful run of the same normalized query on the same catalog version
    within the warehouse's ``result_cache_s``, or None."""
    if not key or not warehouse.result_cache_s:
        return None
    since = now - timedelta(seconds=warehouse.result_cache_s)
    return (
        Query.objects.filter(
            warehouse=warehouse,
            cache_key=key,
            status=QueryStatus.SUCCEEDED,
            finished_at__gte=since,
            cached_from__isnull=True,
            result_expired_at__isnull=True,
        )
        .order_by("-finished_at")
        .first()
    )


def _serve_from_cache(query: Query, source: Query, now: datetime) -> None:
    query.status = QueryStatus.SUCCEEDED
    query.mode = "cache"
    query.cached_from = source
    query.result, query.result_file, query.row_count, query.truncated = (
        source.result,
        source.result_file,
        source.row_count,
        source.truncated,
    )
    query.started_at = query.finished_at = now
    query.save(
        update_fields=[
            "status",
            "mode",
            "cached_from",
            "result",
            "result_file",
            "row_count",
            "truncated",
            "started_at",
            "finished_at",
        ]
    )


def _decide(
    user: Any, access: Access, report: Report, acknowledged: bool, justification: str
) -> tuple[str, list[str], bool, Exception | None]:
    """(status, reasons, overridden, refusal): a refused override is a REJECTED row with its
    refusal raised after the row is written."""
    reasons = list(report.reasons)
    if report.decision == "warn":
        status = QueryStatus.QUEUED if acknowledged else QueryStatus.NEEDS_ACK
        return status, reasons, False, None
    if report.decision != "reject":
        return QueryStatus.QUEUED, reasons, False, None
    if not justification.strip():
        return QueryStatus.REJECTED, reasons, False, None
    if not _may_override(user, access):
        refusal: Exception = NotPermitted(
            str(_("Only a lead of the query's team or an admin may override."))
        )
        return QueryStatus.REJECTED, [*reasons, str(refusal)], False, refusal
    unsafe = [
        f.rule for f in report.findings if f.severity is Severity.ERROR and f.rule in SAFETY_RULES
    ]
    if unsafe or report.error is not None:
        refusal = InvalidRequest(
            f"This query cannot be overridden: {', '.join(unsafe) or 'it does not parse'}.",
            code="not_overridable",
        )
        return QueryStatus.REJECTED, [*reasons, str(refusal)], False, refusal
    return QueryStatus.QUEUED, reasons, True, None


def _may_override(user: Any, access: Access) -> bool:
    if user.is_staff:
        return True
    return access.team is not None and is_team_lead(user, access.team)


def _lock_budget_holders(user: Any, access: Access) -> None:
    """Row locks on the user, then the team (always in this order): budget checks of one
    user, or one team, run one at a time until the query row is written. (SQLite's
    immediate transactions already serialize writers.)"""
    # request.user may be a lazy wrapper: lock by the model, not type(user).
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
    if access.team is not None:
        list(Team.objects.select_for_update().filter(pk=access.team.pk).values_list("pk"))


def _budget_refusal(user: Any, access: Access, estimate: int, now: datetime) -> Exception | None:
    warehouse = access.warehouse
    running = Query.objects.filter(user=user, status__in=ACTIVE_STATUSES).count()
    if running >= warehouse.max_concurrent_per_user:
        return BudgetExceeded(
            f"You already have {running} queries running or queued "
            f"(limit {warehouse.max_concurrent_per_user})."
        )
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = Query.objects.filter(warehouse=warehouse, created_at__gte=day, status__in=_COUNTED)
    for limit, scope, rows in (
        (warehouse.daily_bytes_per_user, "your", today.filter(user=user)),
        (
            warehouse.daily_bytes_per_team,
            "your team's",
            today.filter(team=access.team) if access.team else None,
        ),
    ):
        if limit is None or rows is None:
            continue
        totals = rows.aggregate(scanned=Sum("bytes_estimate"), spilled=Sum("temp_bytes"))
        used = (totals["scanned"] or 0) + (totals["spilled"] or 0)
        if used + estimate > limit:
            return BudgetExceeded(
                f"This query (about {estimate:,} bytes) would pass {scope} daily budget of "
                f"{limit:,} bytes scanned on {warehouse.name} ({used:,} used today)."
            )
    return None


def _raise_refusal(
    query: Query, report: Report, analysis: dict[str, Any], refusal: Exception | None
) -> None:
    details = {
        "query_id": query.pk,
        "decision": report.decision.value,
        "reasons": query.reasons,
        "findings": analysis["findings"],
    }
    if refusal is not None:
        refusal.details = details  # type: ignore[attr-defined]
        raise refusal
    if report.error is not None and query.status == QueryStatus.REJECTED:
        error = report.error
        raise SqlError(
            f"line {error.line}, column {error.column}: {error.message}",
            details={**details, "line": error.line, "column": error.column, "kind": error.kind},
        )
    if query.status == QueryStatus.REJECTED:
        first = next((f for f in report.findings if f.severity is Severity.ERROR), None)
        if first is not None and first.rule in {
            "unknown-table",
            "unknown-column",
            "ambiguous-column",
        }:
            raise SqlError(
                f"line {first.line}, column {first.column}: {first.message}",
                details={**details, "line": first.line, "column": first.column, "kind": "catalog"},
            )
        raise QueryRejected(
            "The query gate rejected this query: " + "; ".join(query.reasons), details=details
        )
    if query.status == QueryStatus.NEEDS_ACK:
        raise AcknowledgementRequired(
            "This query has warnings; resend it with acknowledge_warnings=true to run it.",
            details=details,
        )


def _enqueue(query_id: int) -> None:
    from querygate import tasks

    transaction.on_commit(lambda: tasks.run_query.delay(query_id))


def limited_sql(query: Query, dialect: str) -> str:
    """The statement the engine runs: the one the gate judged, re-rendered by sqlglot
    (``engine_statement``); a SELECT returns at most ``row_cap + 1`` rows (LIMIT added or
    lowered; the +1 detects truncation), so the engine stops early. ``SqlError`` unless
    exactly one statement parses."""
    cap = query.warehouse.row_cap + 1 if query.statement_type == "select" else None
    return engine_statement(query.sql, dialect, cap=cap)


def execute_query(
    query_id: int, *, engine: Engine | None = None, inline: bool = False, poll_s: float = 0.2
) -> Query:
    """Claim a queued query and run it on the engine; safe to call twice (the second call
    finds it claimed and returns it). Inline runs get ``QUERYGATE_INLINE_SECONDS``; one that
    passes it is stopped on the engine and handed to Celery with its full budget."""
    now = timezone.now()
    query = Query.objects.select_related("warehouse").get(pk=query_id)
    budget = query.runtime_budget_s or query.warehouse.max_runtime_s
    timeout = min(budget, _setting("QUERYGATE_INLINE_SECONDS", 5.0)) if inline else budget
    claimed = Query.objects.filter(pk=query_id, status=QueryStatus.QUEUED).update(
        status=QueryStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        deadline=now + timedelta(seconds=budget),
        mode="inline" if inline else "celery",
    )
    if claimed != 1:
        return query  # run by another delivery, cancelled, or lost: never run late
    try:
        return _run_claimed(query, engine, timeout, inline, poll_s)
    except Exception as error:  # nothing may leave a query "running" with no executor
        log.exception("query.executor_failed id=%s", query_id)
        return _finish(
            query_id,
            QueryStatus.FAILED,
            error={"message": f"internal error: {type(error).__name__}", "kind": "internal"},
        )


def _run_claimed(
    query: Query, engine: Engine | None, timeout: float, inline: bool, poll_s: float
) -> Query:
    query_id = query.pk
    warehouse = query.warehouse
    engine = engine or engine_of(warehouse)
    try:
        sql = limited_sql(query, warehouse.sql_dialect)
    except SqlError as error:
        return _finish(query_id, QueryStatus.FAILED, error={"message": str(error)})
    session: Session | None = None
    try:
        with engine.session(
            timeout_s=timeout, allow_writes=query.statement_type != "select"
        ) as session:
            Query.objects.filter(pk=query_id).update(engine_handle=session.handle)
            watcher = _Watcher(query_id, session, poll_s)
            watcher.start()
            try:
                result = session.execute(sql, max_rows=warehouse.row_cap)
            finally:
                watcher.stop()
    except QueryInterrupted as error:
        return _interrupted(query_id, str(error), inline=inline)
    except EngineError as error:
        return _finish(query_id, QueryStatus.FAILED, error={"message": str(error)})
    finally:
        if session is not None and session.temp_bytes:  # spill counts, whatever the outcome
            Query.objects.filter(pk=query_id).update(temp_bytes=session.temp_bytes)
    return _store(query_id, result, cut_by=session.cut_by)


def _without_bytes(result: ResultSet) -> ResultSet:
    """Binary values (BLOB, bytea) as text ``\\x`` + hex, their columns typed VARCHAR: the
    preview is JSON and the result file is written through JSON lines."""
    binary = {
        i
        for row in result.rows
        for i, value in enumerate(row)
        if isinstance(value, bytes | bytearray | memoryview)
    }
    if not binary:
        return result

    def text(value: Any) -> Any:
        if isinstance(value, bytes | bytearray | memoryview):
            return "\\x" + bytes(value).hex()
        return value

    rows = [tuple(text(v) if i in binary else v for i, v in enumerate(r)) for r in result.rows]
    types = tuple("VARCHAR" if i in binary else t for i, t in enumerate(result.types))
    return ResultSet(result.columns, rows, result.truncated, types)


def _store(query_id: int, result: ResultSet, *, cut_by: str = "") -> Query:
    """Write the result's Parquet file, then mark the query succeeded with a preview of the
    first rows. A failed write fails the query (its audit row stays, with the reason) and
    leaves no file; a file whose query was killed meanwhile is removed. A result cut at the
    byte limit says so in ``error`` (``kind: result_truncated``) while it succeeds."""
    result = _without_bytes(result)
    size: dict[str, Any] = {"row_count": len(result.rows), "truncated": result.truncated}
    if cut_by == "bytes":
        size["error"] = {
            "kind": "result_truncated",
            "message": (
                f"Only the first {len(result.rows):,} rows are kept: the result passed "
                f"{int(_setting('QUERYGATE_MAX_RESULT_MB', 32))} MiB."
            ),
        }
    preview: dict[str, Any] = {"columns": result.columns, "rows": [list(r) for r in result.rows]}
    name = ""
    if result.columns:
        try:
            name = results.write_result(query_id, result)
        except results.ResultStorageError as error:
            message = f"The query ran but its result could not be stored: {error}"
            return _finish(
                query_id,
                QueryStatus.FAILED,
                error={"message": message, "kind": "result_storage"},
                **size,
            )
        preview["rows"] = preview["rows"][: results.PREVIEW_ROWS]
    query = _finish(query_id, QueryStatus.SUCCEEDED, result=preview, result_file=name, **size)
    if name and query.result_file != name:
        (results.results_dir() / name).unlink(missing_ok=True)
    return query


def _interrupted(query_id: int, message: str, *, inline: bool) -> Query:
    query = Query.objects.get(pk=query_id)
    if query.cancel_requested_at is None and inline and "timeout" in message.lower():
        # Not cancelled: the inline budget ran out. Hand it to a worker with its full budget.
        updated = Query.objects.filter(pk=query_id, status=QueryStatus.RUNNING).update(
            status=QueryStatus.QUEUED,
            mode="celery",
            started_at=None,
            deadline=None,
            engine_handle={},
        )
        if updated:
            _enqueue(query_id)
        return Query.objects.get(pk=query_id)
    if query.cancel_requested_at is not None and query.killed_by_id == query.user_id:
        status = QueryStatus.CANCELLED
    else:
        status = QueryStatus.KILLED
    reason = query.kill_reason or "engine timeout: runtime budget exceeded"
    return _finish(query_id, status, error={"message": message}, kill_reason=reason)


def _finish(query_id: int, status: str, **fields: Any) -> Query:
    Query.objects.filter(pk=query_id, status=QueryStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )
    query = Query.objects.get(pk=query_id)
    log.info("query.finished id=%s status=%s rows=%s", query_id, query.status, query.row_count)
    return query


_HEARTBEAT_S = 2.0


class _Watcher:
    """Polls the query's row while it runs; on a cancel request or a passed deadline it
    interrupts the session (DuckDB can only be interrupted by the process running it)."""

    def __init__(self, query_id: int, session: Session, poll_s: float) -> None:
        self._query_id = query_id
        self._session = session
        self._poll_s = poll_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"qg-{query_id}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        beat = checked = time.monotonic()
        try:
            while not self._done.wait(min(self._poll_s, _HEARTBEAT_S)):
                now = time.monotonic()
                if now - beat >= _HEARTBEAT_S:
                    beat = now
                    Query.objects.filter(pk=self._query_id, status=QueryStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                if now - checked < self._poll_s:
                    continue
                checked = now
                row = (
                    Query.objects.filter(pk=self._query_id)
                    .values("cancel_requested_at", "deadline", "status")
                    .first()
                )
                if row is None or row["status"] != QueryStatus.RUNNING:
                    return
                if row["cancel_requested_at"] is not None:
                    self._session.interrupt()
                    return
                if row["deadline"] is not None and timezone.now() > row["deadline"]:
                    request_kill(
                        self._query_id,
                        by=None,
                        reason="runtime budget exceeded",
                        now=timezone.now(),
                        signal=False,
                    )
                    self._session.interrupt()
                    return
        except Exception:  # the watcher must never take the worker down
            log.exception("query.watcher_failed id=%s", self._query_id)
        finally:
            connection.close()


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
    if Query.objects.filter(pk=query_id, status=QueryStatus.QUEUED).update(
        status=QueryStatus.CANCELLED if own else QueryStatus.KILLED,
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
    """The owner cancels their query; an admin kills anyone's. Others get 404 (not their
    query to see) or 403 (a teammate's they can see)."""
    try:
        query = Query.objects.get(pk=query_id)
    except Query.DoesNotExist:
        raise NotFoundError("Query not found.") from None
    if query.user_id != user.pk and not user.is_staff:
        raise NotPermitted("Only the query's owner or an admin can cancel it.")
    if query.status not in ACTIVE_STATUSES:
        raise Conflict(f"The query is already {query.status}.", code="not_running")
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
        counts["lost"] += Query.objects.filter(pk=query.pk, status=QueryStatus.RUNNING).update(
            status=QueryStatus.KILLED,
            finished_at=now,
            error={"message": "the executor did not report back after the kill"},
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

    def mark_lost(rows: Any, message: str) -> int:
        return int(
            rows.update(
                status=QueryStatus.LOST,
                finished_at=now,
                error={"kind": "lost", "message": message},
            )
        )

    lost = mark_lost(
        Query.objects.filter(status=QueryStatus.QUEUED, created_at__lt=now - queued_limit),
        f"No worker started this query within {queued_limit.total_seconds():g} s (a worker "
        "may have died); it will not run. Submit it again.",
    )
    # A query being killed is left to the kill's escalation above.
    lost += mark_lost(
        Query.objects.filter(
            status=QueryStatus.RUNNING,
            heartbeat_at__lt=now - silent_limit,
            cancel_requested_at__isnull=True,
        ),
        f"The process running this query stopped reporting for "
        f"{silent_limit.total_seconds():g} s (it may have died); the query was abandoned. "
        "Submit it again.",
    )
    return lost


def wait_for(query_id: int, *, timeout_s: float) -> Query:
    """Poll until the query leaves queued/running (tests and the CLI)."""
    end = time.monotonic() + timeout_s
    while True:
        query = Query.objects.get(pk=query_id)
        if query.status not in ACTIVE_STATUSES or time.monotonic() > end:
            return query
        close_old_connections()
        time.sleep(0.1)
