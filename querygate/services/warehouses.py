"""Access, policy, catalog snapshots and per-user analysis of warehouses."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlglot
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from sqlglot import exp
from sqlglot.errors import SqlglotError

from portal.accounts.models import Membership, Team
from portal.errors import KarimasuError, NotFoundError
from querygate.analysis import Catalog, ColumnStats, Policy, Report, TableStats, analyze
from querygate.engines import Engine, engine_for
from querygate.engines.base import cap_rows, one_statement
from querygate.errors import (
    EngineError,
    QueryInterrupted,
    QueryRejected,
    SqlError,
    WarehouseDenied,
)
from querygate.models import (
    AnalyzeAudit,
    CatalogTable,
    Query,
    QueryStatus,
    Warehouse,
    WarehouseGrant,
)
from querygate.overrides import policy_from, sandbox_limits

log = logging.getLogger("karimasu.querygate")

DEFAULT_SCHEMAS = {"duckdb": "main", "postgres": "public"}


@dataclass(frozen=True)
class Access:
    """How ``user`` may use a warehouse: the team the query is accounted to (None for an
    admin or a user in no team), whether writes are allowed, and the policy."""

    warehouse: Warehouse
    team: Team | None
    allow_writes: bool
    policy: Policy
    is_admin: bool = False
    max_runtime_s: float = 300.0


def get_warehouse(name: str) -> Warehouse:
    try:
        return Warehouse.objects.get(name=name)
    except Warehouse.DoesNotExist:
        raise NotFoundError(f"Warehouse {name!r} not found.") from None


def engine_of(warehouse: Warehouse) -> Engine:
    return engine_for(
        warehouse.engine, warehouse.connection, limits=sandbox_limits(warehouse.policy or {})
    )


def engine_statement(sql: str, dialect: str, *, cap: int | None = None) -> str:
    """The one statement the gate judged, re-rendered by sqlglot in ``dialect``: what EXPLAIN
    and execution send, never the raw text (a comment or quote the engine reads differently
    cannot smuggle a second statement); with ``cap``, returning at most that many rows
    (``cap_rows``). ``SqlError`` unless ``sql`` is exactly one statement."""
    try:
        tree = one_statement(sql, dialect)
    except EngineError as error:
        message = str(error)
        raise SqlError(f"{message[:1].upper()}{message[1:]}.") from error
    if cap is not None:
        tree = cap_rows(tree, cap)
    return tree.sql(dialect=dialect)


def engine_explain(warehouse: Warehouse, sql: str) -> dict[str, Any]:
    """The engine's EXPLAIN of ``sql`` (re-rendered, under ``QUERYGATE_EXPLAIN_SECONDS``):
    ``{"explain": plan, "explain_status": "ok"}``, or ``explain_status`` ``timeout`` /
    ``failed`` with ``explain_error``."""
    try:
        plan = engine_of(warehouse).explain(
            engine_statement(sql, warehouse.sql_dialect),
            timeout_s=float(settings.QUERYGATE_EXPLAIN_SECONDS),
        )
    except QueryInterrupted as error:
        log.info("explain.timeout warehouse=%s %s", warehouse.name, error)
        return {"explain_status": "timeout", "explain_error": str(error)}
    except (EngineError, SqlError) as error:
        log.info("explain.failed warehouse=%s %s", warehouse.name, error)
        return {"explain_status": "failed", "explain_error": str(error)}
    return {"explain": plan, "explain_status": "ok"}


def access_for(user: Any, warehouse: Warehouse, team_slug: str | None = None) -> Access:
    """The user's access to ``warehouse``; ``WarehouseDenied`` when there is none.

    Admins always have access (writes if ``admin_writes``). Others need a grant to one of
    their teams (``lead`` grants only leads) or an ``open_to_all`` warehouse; the query is
    accounted to the granting team, else to the user's first team (or ``team_slug``).
    """
    memberships = list(Membership.objects.filter(user=user).select_related("team"))
    if team_slug:
        memberships = [m for m in memberships if m.team.slug == team_slug]
        if not memberships and not user.is_staff:
            raise WarehouseDenied(f"You are not in team {team_slug!r}.")
    if user.is_staff:
        team = memberships[0].team if memberships else None
        policy = policy_from(warehouse.policy, allow_writes=warehouse.admin_writes)
        return Access(
            warehouse,
            team,
            warehouse.admin_writes,
            policy,
            True,
            _runtime(warehouse, warehouse.policy),
        )
    if not warehouse.enabled:
        raise WarehouseDenied(f"Warehouse {warehouse.name} is disabled.")
    roles = {m.team_id: m.role for m in memberships}
    grants = [
        g
        for g in WarehouseGrant.objects.filter(warehouse=warehouse, team_id__in=roles)
        .select_related("team")
        .order_by("team__slug")
        if g.role == WarehouseGrant.Role.MEMBER or roles[g.team_id] == Membership.Role.LEAD
    ]
    if grants:
        team = grants[0].team
        mine = [g for g in grants if g.team_id == team.pk]
        writes = any(g.allow_writes for g in mine)
        policy = policy_from(warehouse.policy, *(g.policy for g in mine), allow_writes=writes)
        runtime = _runtime(warehouse, warehouse.policy, *(g.policy for g in mine))
        return Access(warehouse, team, writes, policy, False, runtime)
    if warehouse.open_to_all and not WarehouseGrant.objects.filter(warehouse=warehouse).exists():
        team = memberships[0].team if memberships else None
        policy = policy_from(warehouse.policy, allow_writes=False)
        return Access(warehouse, team, False, policy, False, _runtime(warehouse, warehouse.policy))
    raise WarehouseDenied(f"You have no access to warehouse {warehouse.name}.")


def _runtime(warehouse: Warehouse, *overrides: dict[str, Any]) -> float:
    """The runtime budget: the warehouse's ``max_runtime_s`` unless a policy override
    (warehouse or grant, later wins) sets ``max_runtime_s``."""
    value = float(warehouse.max_runtime_s)
    for override in overrides:
        value = float(override.get("max_runtime_s", value))
    return value


def catalog_for(warehouse: Warehouse) -> Catalog:
    """The analysis catalog of the warehouse's current snapshot, cached per process and
    keyed by the version and refresh time (a rebuilt database reusing ids cannot alias)."""
    refreshed = warehouse.catalog_refreshed_at.isoformat() if warehouse.catalog_refreshed_at else ""
    return _catalog(warehouse.pk, warehouse.catalog_version, refreshed, warehouse.engine)


@lru_cache(maxsize=32)
def _catalog(warehouse_id: int, version: int, refreshed: str, engine: str) -> Catalog:
    tables = []
    for row in CatalogTable.objects.filter(warehouse_id=warehouse_id, present=True):
        columns = tuple(
            ColumnStats(c["name"], c["type"], c["avg_width"], c.get("bytes"), c.get("distinct"))
            for c in row.columns
        )
        tables.append(
            TableStats(
                row.name,
                columns,
                schema=row.schema,
                rows=row.rows,
                bytes=row.bytes,
                primary_key=tuple(row.primary_key),
                unique_keys=tuple(tuple(k) for k in row.unique_keys),
                partition_columns=tuple(row.declared_partition_columns or row.partition_columns),
                requires_partition_filter=row.requires_partition_filter,
            )
        )
    return Catalog(tuple(tables), default_schema=DEFAULT_SCHEMAS.get(engine, "main"))


def refresh_catalog(warehouse_id: int, *, now: datetime, engine: Engine | None = None) -> int:
    """Read the engine's catalog into the snapshot; returns the new catalog version.

    Admin-declared partition columns and the partition-filter flag survive; tables gone
    from the engine are kept with ``present=False`` (their declarations stay). Engine
    failures are recorded on the warehouse and re-raised."""
    warehouse = Warehouse.objects.get(pk=warehouse_id)
    engine = engine or engine_of(warehouse)
    try:
        tables = engine.catalog()
    except EngineError as error:
        Warehouse.objects.filter(pk=warehouse_id).update(catalog_error=str(error)[:2000])
        raise
    with transaction.atomic():
        warehouse = Warehouse.objects.select_for_update().get(pk=warehouse_id)
        seen = []
        for t in tables:
            row, _ = CatalogTable.objects.update_or_create(
                warehouse=warehouse,
                schema=t.schema,
                name=t.name,
                defaults={
                    "rows": t.rows,
                    "bytes": t.bytes,
                    "columns": [dataclasses.asdict(c) for c in t.columns],
                    "primary_key": list(t.primary_key),
                    "unique_keys": [list(k) for k in t.unique_keys],
                    "partition_columns": list(t.partition_columns),
                    "present": True,
                    "refreshed_at": now,
                },
            )
            seen.append(row.pk)
        warehouse.tables.exclude(pk__in=seen).update(present=False)
        warehouse.catalog_version += 1
        warehouse.catalog_refreshed_at = now
        warehouse.catalog_error = ""
        warehouse.save(update_fields=["catalog_version", "catalog_refreshed_at", "catalog_error"])
    log.info(
        "catalog.refreshed warehouse=%s tables=%d version=%d",
        warehouse.name,
        len(tables),
        warehouse.catalog_version,
    )
    return warehouse.catalog_version


def declare_partitioning(
    warehouse: Warehouse, table: str, columns: list[str], *, required: bool, schema: str = ""
) -> CatalogTable:
    """An admin declares a table's partition columns and whether a filter on them is
    required. The next analysis sees it (the catalog version is bumped)."""
    schema = schema or DEFAULT_SCHEMAS.get(warehouse.engine, "main")
    with transaction.atomic():
        try:
            row = CatalogTable.objects.select_for_update().get(
                warehouse=warehouse, schema=schema, name=table
            )
        except CatalogTable.DoesNotExist:
            raise NotFoundError(f"Table {schema}.{table} is not in the catalog.") from None
        known = {c["name"].lower() for c in row.columns}
        missing = [c for c in columns if c.lower() not in known]
        if missing:
            raise NotFoundError(f"{schema}.{table} has no column {', '.join(missing)}.")
        row.declared_partition_columns = columns
        row.requires_partition_filter = required
        row.save(update_fields=["declared_partition_columns", "requires_partition_filter"])
        Warehouse.objects.filter(pk=warehouse.pk).update(
            catalog_version=warehouse.catalog_version + 1
        )
    warehouse.refresh_from_db(fields=["catalog_version"])
    return row


def fingerprint(sql: str, dialect: str) -> str:
    """sha256 of the statement with literals replaced by ``?`` (same shape, same print)."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
        text = tree.transform(lambda n: exp.Placeholder() if isinstance(n, exp.Literal) else n).sql(
            dialect=dialect
        )
    except SqlglotError:
        text = " ".join(sql.split())
    return hashlib.sha256(text.encode()).hexdigest()


def predicted_runtime_s(warehouse: Warehouse, bytes_scanned: int) -> float | None:
    """Runtime predicted from the warehouse's history: the median seconds per estimated
    byte of its last 200 finished queries (at least 5) times this estimate."""
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
    rates = [
        (end - start).total_seconds() / size
        for start, end, size in history
        if start is not None and end is not None  # always: the filter above
    ]
    if len(rates) < 5:
        return None
    return round(statistics.median(rates) * bytes_scanned, 3)


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
        sql, dialect=warehouse.sql_dialect, catalog=catalog_for(warehouse), policy=access.policy
    )
    data = report.to_dict()
    data["explain"] = None
    data["explain_status"] = "skipped"
    if data["estimate"] is not None:
        data["estimate"]["runtime_s"] = predicted_runtime_s(
            warehouse, report.estimate.bytes_scanned if report.estimate else 0
        )
        sources = ["catalog"] + (["history"] if data["estimate"]["runtime_s"] is not None else [])
        if explain and report.decision != "reject" and report.statement_kind == "select":
            if before_explain is not None:
                before_explain(report)
            data.update(engine_explain(warehouse, sql))
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

    def write(**fields: Any) -> AnalyzeAudit:
        return AnalyzeAudit.objects.create(
            user=user,
            team=access.team,
            warehouse=access.warehouse,
            sql=sql,
            fingerprint=fingerprint(sql, access.warehouse.sql_dialect),
            created_at=now,
            **fields,
        )

    def record(report: Report) -> None:
        audit.append(write(decision=report.decision.value, explain_status="running"))

    try:
        report, data = analysis_of(access, sql, explain=explain, before_explain=record)
    except Exception as error:
        write(
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
        write(decision=report.decision.value, finished_at=now)
    return data


def visible_warehouses(user: Any) -> Any:
    """The warehouses ``user`` may query: admins all; others the enabled ones open to all or
    granted to one of their teams."""
    if user.is_staff:
        return Warehouse.objects.all()
    teams = Membership.objects.filter(user=user).values("team")
    granted = WarehouseGrant.objects.filter(team__in=teams).values("warehouse")
    with_grants = WarehouseGrant.objects.values("warehouse")
    return Warehouse.objects.filter(
        Q(open_to_all=True, enabled=True) & ~Q(pk__in=with_grants) | Q(pk__in=granted),
        enabled=True,
    )


def visible_queries(user: Any) -> Any:
    """Own queries; a lead's team's queries; admins all."""
    rows = Query.objects.select_related("user", "team", "warehouse", "killed_by", "override_by")
    if user.is_staff:
        return rows
    led = Membership.objects.filter(user=user, role=Membership.Role.LEAD).values("team")
    return rows.filter(Q(user=user) | Q(team__in=led))
