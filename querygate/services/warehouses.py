"""A warehouse's engine: the engine to talk to (with the sandbox limits its ``policy``
sets, read by ``querygate.overrides``), the runtime budget, and the statement and EXPLAIN
the engine is sent.
(Who may use a warehouse: ``access``; its catalog: ``catalog``; analyses: ``analyses``.)"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from sqlglot import exp

from querygate.engines import Engine, engine_for
from querygate.engines.base import cap_rows, one_statement
from querygate.errors import EngineError, QueryInterrupted, SqlError
from querygate.models import Warehouse
from querygate.overrides import sandbox_limits

log = logging.getLogger("karimasu.querygate")


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
        raise SqlError(
            _("The gate cannot run this SQL: %(error)s.") % {"error": message}
        ) from error
    return render_statement(tree, dialect, cap=cap)


def render_statement(tree: exp.Expr, dialect: str, *, cap: int | None = None) -> str:
    """``tree`` rendered in ``dialect`` (``tree`` itself is left as it is); with ``cap``,
    returning at most that many rows (``cap_rows``)."""
    tree = tree.copy()
    if cap is not None:
        tree = cap_rows(tree, cap)
    return tree.sql(dialect=dialect, copy=False)


def engine_explain(
    warehouse: Warehouse, sql: str, *, statement: exp.Expr | None = None
) -> dict[str, Any]:
    """The engine's EXPLAIN of ``sql`` (re-rendered from ``statement``, its tree as the
    analysis kept it, else parsed; under ``QUERYGATE_EXPLAIN_SECONDS``):
    ``{"explain": plan, "explain_status": "ok"}``, or ``explain_status`` ``timeout`` /
    ``failed`` with ``explain_error``."""
    dialect = warehouse.sql_dialect
    try:
        text = (
            render_statement(statement, dialect)
            if statement is not None
            else engine_statement(sql, dialect)
        )
        plan = engine_of(warehouse).explain(
            text, timeout_s=float(settings.QUERYGATE_EXPLAIN_SECONDS)
        )
    except QueryInterrupted as error:
        log.info("explain.timeout warehouse=%s %s", warehouse.name, error)
        return {"explain_status": "timeout", "explain_error": str(error)}
    except (EngineError, SqlError) as error:
        log.info("explain.failed warehouse=%s %s", warehouse.name, error)
        return {"explain_status": "failed", "explain_error": str(error)}
    return {"explain": plan, "explain_status": "ok"}


def runtime_budget(warehouse: Warehouse, *overrides: dict[str, Any]) -> float:
    """The runtime budget: the warehouse's ``max_runtime_s`` unless a policy override
    (warehouse or grant, later wins) sets ``max_runtime_s``."""
    value = float(warehouse.max_runtime_s)
    for override in overrides:
        value = float(override.get("max_runtime_s", value))
    return value
