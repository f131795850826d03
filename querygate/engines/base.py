"""The ``Engine`` protocol: explain, execute in a session with a cancel handle, cancel from
anywhere, and catalog statistics.

A ``Session`` is one engine connection set up for one query: read-only unless writes are
allowed, with the engine-side timeout as the second guard. ``session.handle`` is a small
JSON-able dict that lets *another process* cancel the statement (PostgreSQL: the backend pid
and start time); ``session.interrupt()`` cancels it from another thread of the same process
(DuckDB's only way). ``execute`` raises ``QueryInterrupted`` when cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from querygate.analysis import TableStats
from querygate.engines.export import BATCH_ROWS, ExportStats
from querygate.errors import EngineError


@dataclass(frozen=True)
class ResultSet:
    """Column names and at most ``max_rows`` rows; ``truncated`` when more were available.
    ``types`` are the columns' DuckDB type names (what the Parquet file stores; empty when the
    engine did not say)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    types: tuple[str, ...] = ()


class Session(Protocol):
    """``temp_bytes`` (peak spill) and ``cut_by`` (``"rows"``, ``"bytes"`` or empty: why
    the result was truncated) are set by ``execute``."""

    handle: dict[str, Any]
    temp_bytes: int
    cut_by: str

    def execute(self, sql: str, *, max_rows: int) -> ResultSet: ...

    def export(
        self,
        sql: str,
        *,
        path: str,
        max_rows: int,
        max_bytes: int,
        timeout_s: float,
        batch_rows: int = BATCH_ROWS,
    ) -> ExportStats:
        """Write the whole result of the read ``sql`` (already capped at ``max_rows + 1``
        rows) to a new Parquet file at ``path``, streamed in Arrow batches of
        ``batch_rows`` rows, stopping past ``max_rows`` rows or ``max_bytes``
        (``ExportStats.cut_by``); within ``timeout_s``, and ``QueryInterrupted`` on
        ``interrupt()``. On any exception nothing is left at ``path``."""
        ...

    def interrupt(self) -> None: ...


class Engine(Protocol):
    kind: str

    def session(
        self, *, timeout_s: float, allow_writes: bool = False
    ) -> AbstractContextManager[Session]: ...

    def cancel(self, handle: dict[str, Any], *, terminate: bool = False) -> bool:
        """Cancel the statement of ``handle`` from any process; True when a signal was sent.
        Engines that cannot (DuckDB) return False and rely on the session's own watcher."""
        ...

    def explain(self, sql: str, *, timeout_s: float = 2.0) -> dict[str, Any]:
        """The engine's own estimate: ``{"rows": int | None, "cost": float | None}`` of one
        statement, within ``timeout_s`` (``QueryInterrupted`` "timeout: ..." after it)."""
        ...

    def catalog(self, *, timeout_s: float = 600.0) -> list[TableStats]: ...


def fetch_within(
    cursor: Any, max_rows: int, max_bytes: int, type_of: Callable[[Any], str]
) -> tuple[ResultSet, str]:
    """At most ``max_rows`` rows and ``max_bytes`` (``value_size``) from a DB-API cursor,
    read in batches, and why it stopped early: ``"rows"``, ``"bytes"`` or ``""`` (all read).
    ``type_of`` maps a ``cursor.description`` entry to a DuckDB type name. A first row over
    ``max_bytes`` alone is an ``EngineError``."""
    description = cursor.description or ()
    columns = [d[0] for d in description]
    types = tuple(type_of(d) for d in description)
    rows: list[tuple[Any, ...]] = []
    if not description:
        return ResultSet(columns, rows, False, types), ""
    size = 0
    while True:
        batch = cursor.fetchmany(min(1000, max_rows + 1 - len(rows)))
        if not batch:
            return ResultSet(columns, rows, False, types), ""
        for row in batch:
            if len(rows) >= max_rows:
                return ResultSet(columns, rows, True, types), "rows"
            size += sum(value_size(v) for v in row)
            if size > max_bytes:
                if not rows:
                    raise EngineError(
                        f"the first row alone is larger than the result limit of "
                        f"{max_bytes // 1024**2} MiB: select fewer or smaller values"
                    )
                return ResultSet(columns, rows, True, types), "bytes"
            rows.append(tuple(row))


def one_statement(sql: str, dialect: str) -> exp.Expr:
    """sqlglot's reading of ``sql`` as exactly one statement (``EngineError`` otherwise):
    what EXPLAIN and execution re-render and send, never the raw text."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as error:
        raise EngineError(f"the statement does not parse: {str(error).splitlines()[0]}") from error
    if len(statements) != 1:
        raise EngineError("exactly one statement is run at a time")
    return statements[0]


TYPE_WIDTHS = {
    "BOOLEAN": 1,
    "TINYINT": 1,
    "SMALLINT": 2,
    "INTEGER": 4,
    "INT": 4,
    "BIGINT": 8,
    "HUGEINT": 16,
    "REAL": 4,
    "FLOAT": 4,
    "DOUBLE": 8,
    "DATE": 4,
    "TIME": 8,
    "TIMESTAMP": 8,
    "TIMESTAMP WITH TIME ZONE": 8,
    "UUID": 16,
}


def type_width(sql_type: str) -> int | None:
    """Fixed width in bytes of a type, or None for variable-width types."""
    base = sql_type.upper().split("(")[0].strip()
    if base.startswith("DECIMAL") or base.startswith("NUMERIC"):
        return 8
    return TYPE_WIDTHS.get(base)


def value_size(value: Any) -> int:
    """The bytes a value stands for in a result (strings and blobs by length, nested values
    summed, scalars by a fixed width): what ``max_result_bytes`` counts."""
    if value is None:
        return 1
    if isinstance(value, str | bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, bool | int | float | Decimal | date | datetime | time | timedelta | UUID):
        return 8 if not isinstance(value, Decimal | UUID) else 16
    if isinstance(value, dict):
        return sum(value_size(k) + value_size(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return sum(value_size(v) for v in value) + 8
    return len(str(value))


def cap_rows(tree: exp.Expr, cap: int) -> exp.Expr:
    """``tree`` returning at most ``cap`` rows, so no more rows than that are ever produced
    or cross the wire: a query without a LIMIT gets ``LIMIT cap``, a literal LIMIT above
    ``cap`` is lowered to it, and any other row limit (an expression, FETCH FIRST) is
    wrapped in ``SELECT * FROM (...) LIMIT cap``. Statements that are not queries are
    returned as they are."""
    if not isinstance(tree, exp.Query):
        return tree
    limit = tree.args.get("limit")
    if limit is None and tree.args.get("fetch") is None:
        return tree.limit(cap)
    if isinstance(limit, exp.Limit) and isinstance(limit.expression, exp.Literal):
        value = limit.expression
        if value.is_int and int(value.name) > cap:
            limit.set("expression", exp.Literal.number(cap))
        if value.is_int:
            return tree
    return exp.select("*").from_(tree.subquery("karimasu_capped")).limit(cap)
