"""A warehouse's policy and engine: the analysis ``Policy`` from its overrides, the
sandbox limits, the engine to talk to, and the statement and EXPLAIN the engine is sent.
(Who may use a warehouse: ``access``; its catalog: ``catalog``; analyses: ``analyses``.)"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.conf import settings
from sqlglot import exp

from querygate.analysis import Policy
from querygate.engines import Engine, engine_for
from querygate.engines.base import cap_rows, one_statement
from querygate.engines.sandbox import MIB, Limits
from querygate.errors import EngineError, InvalidPolicy, QueryInterrupted, SqlError
from querygate.models import Warehouse

log = logging.getLogger("karimasu.querygate")

_POLICY_FIELDS = {f.name for f in dataclasses.fields(Policy)} - {"allow_lists", "allow_writes"}


#: Keys of a warehouse's ``policy`` that set its engine limits (MiB, or threads), over the
#: ``QUERYGATE_*`` settings of the same meaning.
LIMIT_KEYS = {
    "sandbox_memory_mb": "QUERYGATE_SANDBOX_MEMORY_MB",
    "sandbox_threads": "QUERYGATE_SANDBOX_THREADS",
    "temp_mb": "QUERYGATE_TEMP_MB",
    "max_result_mb": "QUERYGATE_MAX_RESULT_MB",
}


def sandbox_limits(*overrides: dict[str, Any]) -> Limits:
    """The limits of every engine call: the ``QUERYGATE_*`` settings, then the
    ``LIMIT_KEYS`` of each policy override in order. ``InvalidPolicy`` for a value that is
    not a positive integer."""
    values = {key: int(getattr(settings, name)) for key, name in LIMIT_KEYS.items()}
    for override in overrides:
        for key in LIMIT_KEYS:
            if key not in override:
                continue
            value = override[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidPolicy(f"The policy's {key} must be a positive whole number.")
            values[key] = value
    return Limits(
        memory_bytes=values["sandbox_memory_mb"] * MIB,
        threads=values["sandbox_threads"],
        temp_bytes=values["temp_mb"] * MIB,
        max_result_bytes=values["max_result_mb"] * MIB,
    )


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
        raise SqlError(f"{error.message[:1].upper()}{error.message[1:]}.") from error
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


def policy_from(*overrides: dict[str, Any], allow_writes: bool) -> Policy:
    """``Policy`` defaults with the known fields of each override applied in order.

    Severity overrides combine rule by rule (a grant's override of one rule keeps the
    warehouse's overrides of the others). An invalid override is InvalidPolicy (400), not a
    crash: the admin screens validate on save, this guards rows saved before that.
    """
    values: dict[str, Any] = {}
    severities: dict[str, Any] = {}
    for override in overrides:
        values.update({k: v for k, v in override.items() if k in _POLICY_FIELDS})
        if isinstance(override.get("severity_overrides"), dict):
            severities.update(override["severity_overrides"])
    if severities:
        values["severity_overrides"] = severities
    try:
        return Policy(**values, allow_writes=allow_writes)
    except (TypeError, ValueError) as exc:
        raise InvalidPolicy(f"The warehouse's query policy is invalid: {exc}") from exc


def runtime_budget(warehouse: Warehouse, *overrides: dict[str, Any]) -> float:
    """The runtime budget: the warehouse's ``max_runtime_s`` unless a policy override
    (warehouse or grant, later wins) sets ``max_runtime_s``."""
    value = float(warehouse.max_runtime_s)
    for override in overrides:
        value = float(override.get("max_runtime_s", value))
    return value
