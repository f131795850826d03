"""The analysis of one SQL request for one user: the pure report (parsed once, its
statement kept), the engine's EXPLAIN where cheap, the runtime predicted from history, and
the audit of analyze requests."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlglot
from django.utils import timezone
from django.utils.translation import gettext as _
from sqlglot.errors import SqlglotError

from portal.errors import KarimasuError
from querygate.analysis import Report, analyze
from querygate.analysis.report import fingerprint_of, text_fingerprint
from querygate.analysis.runtime_model import RuntimeModel
from querygate.analysis.runtime_model import fit as fit_runtime_model
from querygate.errors import QueryRejected
from querygate.models import AnalyzeAudit, Query, QueryStatus, Warehouse
from querygate.services.access import Access
from querygate.services.catalog import catalog_for
from querygate.services.warehouses import engine_explain

log = logging.getLogger("karimasu.querygate")


def fingerprint(sql: str, dialect: str) -> str:
    """sha256 of the statement with literals replaced by ``?`` (same shape, same print); of
    the whitespace-normalized text when it does not parse. For SQL with no analysis at
    hand; an analysis has its own (``Report.fingerprint``)."""
    try:
        return fingerprint_of(sqlglot.parse_one(sql, read=dialect), dialect)
    except SqlglotError:
        return text_fingerprint(sql)


def runtime_model(warehouse: Warehouse) -> RuntimeModel | None:
    """The runtime model learned from the warehouse's last 200 successful queries
    (estimated bytes against actual seconds, ``analysis.runtime_model``), None with fewer
    than 5."""
    history = (
        Query.objects.filter(
            warehouse=warehouse,
            status=QueryStatus.SUCCEEDED,
            bytes_estimate__gt=0,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .order_by("-finished_at")
        .values_list("started_at", "finished_at", "bytes_estimate")[:200]
    )
    points = [
        (int(size), (end - start).total_seconds())
        for start, end, size in reversed(history)  # oldest first: the newest are held out
        if start is not None and end is not None  # always: the filter above
    ]
    return fit_runtime_model(points)


def predicted_runtime_s(warehouse: Warehouse, bytes_scanned: int) -> float | None:
    """Runtime predicted from the warehouse's history (``runtime_model``) for this estimate."""
    model = runtime_model(warehouse)
    return None if model is None else round(model.predict(bytes_scanned), 3)


def analysis_of(
    access: Access,
    sql: str,
    *,
    explain: bool = True,
    before_explain: Callable[[Report], None] | None = None,
) -> tuple[Report, dict[str, Any]]:
    """Analyze ``sql`` for ``access``: the pure report and its JSON with, where cheap, the
    engine's EXPLAIN (of the re-rendered statement, under ``QUERYGATE_EXPLAIN_SECONDS``, in
    the engine's sandbox) and the runtime predicted from history.

    ``before_explain(report)`` is called before the engine is asked anything (the caller
    writes its audit row there); ``data["explain_status"]`` says how the EXPLAIN went:
    ``skipped``, ``ok``, ``timeout`` or ``failed`` (``data["explain_error"]``)."""
    warehouse = access.warehouse
    report = analyze(
        sql,
        dialect=warehouse.sql_dialect,
        catalog=catalog_for(warehouse),
        policy=access.policy,
        keep_statement=True,
    )
    data = report.to_dict()
    data["explain"] = None
    data["explain_status"] = "skipped"
    if data["estimate"] is not None:
        model = runtime_model(warehouse)
        scanned = report.estimate.bytes_scanned if report.estimate else 0
        data["estimate"]["runtime_s"] = None if model is None else round(model.predict(scanned), 3)
        data["estimate"]["runtime_model"] = None if model is None else model.to_dict()
        sources = ["catalog"] + (["history"] if data["estimate"]["runtime_s"] is not None else [])
        if explain and report.decision != "reject" and report.statement_kind == "select":
            if before_explain is not None:
                before_explain(report)
            data.update(engine_explain(warehouse, sql, statement=report.statement))
            if data["explain_status"] == "ok":
                sources.append("explain")
        data["estimate"]["source"] = "+".join(sources)
    return report, data


def audited_analysis(
    user: Any, access: Access, sql: str, *, explain: bool, now: datetime
) -> dict[str, Any]:
    """``analysis_of`` for the analyze endpoint, with its ``AnalyzeAudit`` row written before
    the engine's EXPLAIN is asked for and completed after (or written with the outcome when
    no engine call was needed)."""
    audit: list[AnalyzeAudit] = []

    def write(report: Report | None, **fields: Any) -> AnalyzeAudit:
        printed = report.fingerprint if report is not None else ""
        return AnalyzeAudit.objects.create(
            user=user,
            team=access.team,
            warehouse=access.warehouse,
            sql=sql,
            fingerprint=printed or text_fingerprint(sql),
            created_at=now,
            **fields,
        )

    def record(report: Report) -> None:
        audit.append(write(report, decision=report.decision.value, explain_status="running"))

    try:
        report, data = analysis_of(access, sql, explain=explain, before_explain=record)
    except Exception as error:
        write(
            None,
            explain_status="failed",
            explain_error=f"analysis failed: {type(error).__name__}",
            finished_at=timezone.now(),
        )
        if isinstance(error, KarimasuError):
            raise
        log.exception("analysis.crashed warehouse=%s", access.warehouse.name)
        raise QueryRejected(
            str(_("The query gate could not analyze this query.")), code="analysis_failed"
        ) from None
    if audit:
        AnalyzeAudit.objects.filter(pk=audit[0].pk).update(
            explain_status=data["explain_status"],
            explain_error=str(data.get("explain_error", ""))[:2000],
            finished_at=timezone.now(),
        )
    else:
        write(report, decision=report.decision.value, finished_at=now)
    return data
