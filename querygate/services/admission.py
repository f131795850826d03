"""Admission: a SQL request is analyzed, decided, budgeted and written as its audit row
(always, before anything runs), then run inline when small or queued for a worker.

Decisions (see docs/querygate.md): *reject* answers 400 ``query_rejected`` (or
``sql_error`` with line and column); *warn* answers 409 ``acknowledgement_required`` until
the request says ``acknowledge_warnings: true``; a lead of the query's team or an admin may
run a rejected query with ``override_justification`` unless a safety finding (parse error,
unknown name, escape hatch, write) rejected it. Every request leaves an audit row.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from portal.accounts.models import Team
from portal.errors import InvalidRequest, NotPermitted
from portal.phrases import phrase
from querygate.analysis import Report, Severity
from querygate.analysis.policy import SAFETY_RULES  # the one list: severities and overrides
from querygate.analysis.report import text_fingerprint
from querygate.engines import Engine
from querygate.errors import (
    AcknowledgementRequired,
    BudgetExceeded,
    QueryGateError,
    QueryRejected,
    SqlError,
)
from querygate.messages import finding_phrase, localize_finding, localize_reasons
from querygate.models import ACTIVE_STATUSES, Query, QueryStatus
from querygate.services.access import Access, access_warehouse_named, can_override
from querygate.services.analyses import analysis_of
from querygate.services.execution import enqueue, execute_query
from querygate.services.lifecycle import check_initial, move
from querygate.services.warehouses import engine_explain, render_statement

log = logging.getLogger("karimasu.querygate")

_COUNTED = (
    QueryStatus.QUEUED,
    QueryStatus.RUNNING,
    QueryStatus.SUCCEEDED,
    QueryStatus.FAILED,
    QueryStatus.CANCELLED,
    QueryStatus.KILLED,
)


def submit_query(
    user: Any,
    warehouse_name: str,
    sql: str,
    *,
    now: datetime,
    acknowledge_warnings: bool = False,
    override_justification: str = "",
    team: str | None = None,
    export: bool = False,
    engine: Engine | None = None,
    inline: bool | None = None,
) -> Query:
    """Analyze, decide, write the audit row, then run (inline when small, else Celery).

    Raises ``SqlError``/``QueryRejected``/``AcknowledgementRequired``/``BudgetExceeded``
    *after* the audit row is committed; ``details.query_id`` names it."""
    access = access_warehouse_named(user, warehouse_name, team)
    warehouse = access.warehouse
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
        if cached is not None and export and cached.truncated:
            cached = None  # a cached result cut at the row cap has no export: run it again
        query = Query.objects.create(
            user=user,
            team=access.team,
            warehouse=warehouse,
            sql=sql,
            fingerprint=report.fingerprint or text_fingerprint(sql),
            statement_type=analysis["statement_type"] or "",
            engine_sql=_engine_sql(report, warehouse) if status == QueryStatus.QUEUED else "",
            analysis=analysis,
            decision=report.decision.value,
            reasons=reasons,
            acknowledged=acknowledge_warnings and report.decision == "warn",
            override_by=user if overridden else None,
            override_justification=override_justification if overridden else "",
            catalog_version=warehouse.catalog_version,
            bytes_estimate=estimate,
            status=check_initial(status),
            runtime_budget_s=access.max_runtime_s,
            created_at=now,
            finished_at=now if status not in ACTIVE_STATUSES else None,
            cache_key=key,
            export_requested=export and analysis["statement_type"] == "select",
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
    enqueue(query.pk)
    return query


def _engine_sql(report: Report, warehouse: Any) -> str:
    """What the engine will run: the statement the gate judged, rendered from its tree (no
    second parse); a SELECT returns at most ``row_cap + 1`` rows (the +1 detects
    truncation). Rendered only for a query that will run (a refused one stores none);
    empty when the SQL did not parse into one statement."""
    if report.statement is None:
        return ""
    cap = warehouse.row_cap + 1 if report.statement_kind == "select" else None
    return render_statement(report.statement, warehouse.sql_dialect, cap=cap)


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
        fingerprint=text_fingerprint(sql),
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
    query.analysis.update(engine_explain(access.warehouse, query.sql, statement=report.statement))
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
    fields = {
        "mode": "cache",
        "cached_from": source,
        "result": source.result,
        "result_file": source.result_file,
        "row_count": source.row_count,
        "truncated": source.truncated,
        "started_at": now,
        "finished_at": now,
    }
    move(query.pk, QueryStatus.QUEUED, QueryStatus.SUCCEEDED, **fields)
    query.status = QueryStatus.SUCCEEDED
    for name, value in fields.items():
        setattr(query, name, value)


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
    if not can_override(user, access.team):
        refusal: Exception = NotPermitted(
            str(_("Only a lead of the query's team or an admin may override."))
        )
        return QueryStatus.REJECTED, [*reasons, str(refusal)], False, refusal
    unsafe = [
        f.rule for f in report.findings if f.severity is Severity.ERROR and f.rule in SAFETY_RULES
    ]
    if unsafe or report.error is not None:
        message = (
            _("This query cannot be overridden: %(rules)s.") % {"rules": ", ".join(unsafe)}
            if unsafe
            else _("This query cannot be overridden: it does not parse.")
        )
        refusal = InvalidRequest(message, code="not_overridable")
        return QueryStatus.REJECTED, [*reasons, str(refusal)], False, refusal
    return QueryStatus.QUEUED, reasons, True, None


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
            phrase(
                gettext_noop(
                    "You already have %(running)s queries running or queued (limit %(limit)s)."
                ),
                running=running,
                limit=warehouse.max_concurrent_per_user,
            )
        )
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = Query.objects.filter(warehouse=warehouse, created_at__gte=day, status__in=_COUNTED)
    for limit, message, rows in (
        (
            warehouse.daily_bytes_per_user,
            gettext_noop(
                "This query (about %(estimate)s bytes) would pass your daily budget of "
                "%(limit)s bytes scanned on %(warehouse)s (%(used)s used today)."
            ),
            today.filter(user=user),
        ),
        (
            warehouse.daily_bytes_per_team,
            gettext_noop(
                "This query (about %(estimate)s bytes) would pass your team's daily budget of "
                "%(limit)s bytes scanned on %(warehouse)s (%(used)s used today)."
            ),
            today.filter(team=access.team) if access.team else None,
        ),
    ):
        if limit is None or rows is None:
            continue
        totals = rows.aggregate(scanned=Sum("bytes_estimate"), spilled=Sum("temp_bytes"))
        used = (totals["scanned"] or 0) + (totals["spilled"] or 0)
        if used + estimate > limit:
            return BudgetExceeded(
                phrase(
                    message,
                    estimate=f"{estimate:,}",
                    limit=f"{limit:,}",
                    warehouse=warehouse.name,
                    used=f"{used:,}",
                )
            )
    return None


def _raise_refusal(
    query: Query, report: Report, analysis: dict[str, Any], refusal: Exception | None
) -> None:
    if refusal is not None:
        refusal.details = _refusal_details(  # type: ignore[attr-defined]
            report, analysis, query.reasons, query.pk
        )
        raise refusal
    error = gate_refusal(report, analysis, query.status, query.reasons, query_id=query.pk)
    if error is not None:
        raise error


def _refusal_details(
    report: Report, analysis: dict[str, Any], reasons: list[str], query_id: int | None
) -> dict[str, Any]:
    details: dict[str, Any] = {"query_id": query_id} if query_id is not None else {}
    details.update(
        decision=report.decision.value,
        reasons=localize_reasons(reasons, analysis.get("reason_codes")),
        findings=[localize_finding(f) for f in analysis["findings"]],
    )
    return details


def status_of(report: Report, acknowledge_warnings: bool) -> str:
    """The status the gate gives an analysed query with no override (and budgets aside):
    REJECTED, NEEDS_ACK or QUEUED."""
    if report.decision == "reject":
        return QueryStatus.REJECTED
    if report.decision == "warn" and not acknowledge_warnings:
        return QueryStatus.NEEDS_ACK
    return QueryStatus.QUEUED


def gate_refusal(
    report: Report,
    analysis: dict[str, Any],
    status: str,
    reasons: list[str],
    *,
    query_id: int | None = None,
) -> QueryGateError | None:
    """The gate's refusal of an analysed query in the active language (``SqlError``,
    ``QueryRejected`` or ``AcknowledgementRequired``), None when ``status`` lets it run.
    The one wording of the gate's refusals: ``submit_query`` raises it, a pipeline's
    preflight wraps it (so a refused step says exactly what the gate says)."""
    details = _refusal_details(report, analysis, reasons, query_id)
    if report.error is not None and status == QueryStatus.REJECTED:
        error = report.error
        failed = report.findings[0] if report.findings else None
        message = finding_phrase(failed.to_dict()) if failed else error.message
        return SqlError(
            phrase(
                gettext_noop("line %(line)s, column %(column)s: %(message)s"),
                line=error.line,
                column=error.column,
                message=message,
            ),
            details={**details, "line": error.line, "column": error.column, "kind": error.kind},
        )
    if status == QueryStatus.REJECTED:
        first = next((f for f in report.findings if f.severity is Severity.ERROR), None)
        if first is not None and first.rule in {
            "unknown-table",
            "unknown-column",
            "ambiguous-column",
        }:
            return SqlError(
                phrase(
                    gettext_noop("line %(line)s, column %(column)s: %(message)s"),
                    line=first.line,
                    column=first.column,
                    message=finding_phrase(first.to_dict()),
                ),
                details={**details, "line": first.line, "column": first.column, "kind": "catalog"},
            )
        return QueryRejected(
            phrase(
                gettext_noop("The query gate rejected this query: %(reasons)s"),
                reasons="; ".join(details["reasons"]),
            ),
            details=details,
        )
    if status == QueryStatus.NEEDS_ACK:
        return AcknowledgementRequired(
            phrase(
                gettext_noop("This query has warnings: read them and acknowledge them to run it.")
            ),
            # How to acknowledge is the client's business (the SQL editor has a button, the
            # API a field): the message stays generic, the field is named in the details.
            details={**details, "acknowledge_field": "acknowledge_warnings"},
        )
    return None
