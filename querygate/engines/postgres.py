"""PostgreSQL engine (psycopg 3).

Every session runs with ``default_transaction_read_only=on`` (unless writes are allowed) and
``statement_timeout`` set at connect time, the engine-side second guard; the statement runs
in a transaction started ``READ ONLY``. The admin's DSN should name a role without write
grants, the third wall. The kill is ``pg_cancel_backend(pid)`` from a second connection,
checked against the backend's start time so a reused pid is never signalled; after a grace
the watchdog escalates to ``pg_terminate_backend``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors

from querygate.analysis import ColumnStats, TableStats
from querygate.engines.base import ResultSet, fetch_capped, type_width
from querygate.errors import EngineError, QueryInterrupted

_SIGNAL = (
    "SELECT {fn}(pid) FROM pg_stat_activity WHERE pid = %s AND backend_start = %s::timestamptz"
)


# PostgreSQL type (psycopg's short name, without modifiers) -> the DuckDB type its values
# are stored as in a result's Parquet file; anything else is stored as text.
_DUCKDB_TYPES = {
    "bool": "BOOLEAN",
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "oid": "BIGINT",
    "float4": "FLOAT",
    "float8": "DOUBLE",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "uuid": "UUID",
}


def duckdb_type(column: Any) -> str:
    """The DuckDB type of a psycopg result column: ``numeric(p,s)`` with p <= 38 is a
    DECIMAL, unconstrained ``numeric`` (``avg``, ``sum`` of bigint) a DOUBLE, and types
    DuckDB has no twin for (json, arrays, intervals, bytea) VARCHAR."""
    display = column.type_display
    base = re.sub(r"\(\d+(,\d+)?\)", "", display).strip()
    if base == "numeric":
        precision, scale = column.precision, column.scale
        if precision is not None and precision <= 38:
            return f"DECIMAL({precision},{scale or 0})"
        return "DOUBLE"
    if display.endswith("]"):
        return "VARCHAR"
    return _DUCKDB_TYPES.get(base, "VARCHAR")


class PostgresSession:
    """One backend running one query; ``interrupt()`` cancels it from a second connection."""

    def __init__(self, engine: PostgresEngine, connection: psycopg.Connection, writes: bool):
        self._engine = engine
        self._connection = connection
        self._writes = writes
        row = connection.execute(
            "SELECT pg_backend_pid(), backend_start::text FROM pg_stat_activity "
            "WHERE pid = pg_backend_pid()"
        ).fetchone()
        connection.commit()
        assert row is not None
        self.handle: dict[str, Any] = {"engine": "postgres", "pid": row[0], "backend_start": row[1]}

    def execute(self, sql: str, *, max_rows: int) -> ResultSet:
        connection = self._connection
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SET TRANSACTION READ WRITE" if self._writes else "SET TRANSACTION READ ONLY"
                )
                cursor.execute(sql.encode(), prepare=False)
                result = fetch_capped(cursor, max_rows, type_of=duckdb_type)
            if self._writes:
                connection.commit()
            else:
                connection.rollback()
            return result
        except (errors.QueryCanceled, errors.AdminShutdown) as error:
            raise QueryInterrupted(str(error).strip()) from error
        except psycopg.OperationalError as error:
            if connection.closed:
                raise QueryInterrupted(f"backend terminated: {error}") from error
            raise EngineError(str(error).strip()) from error
        except psycopg.Error as error:
            raise EngineError(str(error).strip()) from error

    def interrupt(self) -> None:
        self._engine.cancel(self.handle)


class PostgresEngine:
    kind = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def connect(
        self, *, timeout_s: float = 30.0, allow_writes: bool = False, autocommit: bool = False
    ) -> psycopg.Connection:
        options = f"-c statement_timeout={max(1, int(timeout_s * 1000))}"
        if not allow_writes:
            options += " -c default_transaction_read_only=on"
        try:
            return psycopg.connect(
                self.dsn, options=options, autocommit=autocommit, connect_timeout=10
            )
        except psycopg.Error as error:
            raise EngineError(f"cannot connect to the PostgreSQL warehouse: {error}") from error

    @contextmanager
    def session(self, *, timeout_s: float, allow_writes: bool = False) -> Iterator[PostgresSession]:
        connection = self.connect(timeout_s=timeout_s, allow_writes=allow_writes)
        try:
            yield PostgresSession(self, connection, allow_writes)
        finally:
            connection.close()

    def cancel(self, handle: dict[str, Any], *, terminate: bool = False) -> bool:
        if handle.get("engine") != "postgres" or "pid" not in handle:
            return False
        function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
        with self.connect(timeout_s=10, autocommit=True) as connection:
            row = connection.execute(
                _SIGNAL.format(fn=function).encode(), (handle["pid"], handle["backend_start"])
            ).fetchone()
        return bool(row and row[0])

    def explain(self, sql: str) -> dict[str, Any]:
        with self.connect(timeout_s=5) as connection:
            try:
                row = connection.execute(f"EXPLAIN (FORMAT JSON) {sql}".encode()).fetchone()
            except psycopg.Error as error:
                raise EngineError(str(error).strip()) from error
        assert row is not None
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
        top = plan[0]["Plan"]
        return {
            "rows": int(top["Plan Rows"]),
            "cost": float(top["Total Cost"]),
            "operator": top["Node Type"],
        }

    def catalog(self) -> list[TableStats]:
        with self.connect(timeout_s=60) as connection:
            try:
                return _read_catalog(connection)
            except psycopg.Error as error:
                raise EngineError(str(error).strip()) from error


_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       CASE WHEN c.relkind = 'p' THEN (
           SELECT sum(greatest(p.reltuples, 0)) FROM pg_partition_tree(c.oid) t
           JOIN pg_class p ON p.oid = t.relid WHERE t.isleaf)
       ELSE nullif(c.reltuples, -1) END,
       CASE WHEN c.relkind = 'p' THEN (
           SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) t)
       WHEN c.relkind IN ('r', 'm') THEN pg_total_relation_size(c.oid) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""
_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), s.avg_width, s.n_distinct
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT avg_width, n_distinct FROM pg_stats s
    WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
    ORDER BY s.inherited DESC LIMIT 1) s ON true
WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attrelid = ANY(%s)
ORDER BY a.attrelid, a.attnum
"""
_KEYS = """
SELECT i.indrelid, i.indisprimary, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisunique AND i.indrelid = ANY(%s) AND i.indpred IS NULL
GROUP BY i.indexrelid, i.indrelid, i.indisprimary
"""
_PARTITION_KEYS = """
SELECT p.partrelid, array_agg(a.attname ORDER BY k.ord)
FROM pg_partitioned_table p
CROSS JOIN LATERAL unnest(p.partattrs) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum
WHERE p.partrelid = ANY(%s)
GROUP BY p.partrelid
"""


def _read_catalog(connection: psycopg.Connection) -> list[TableStats]:
    tables = connection.execute(_TABLES).fetchall()
    oids = [row[0] for row in tables]
    columns: dict[int, list[ColumnStats]] = {oid: [] for oid in oids}
    rows_of = {row[0]: (int(row[4]) if row[4] is not None else None) for row in tables}
    for oid, name, data_type, avg_width, n_distinct in connection.execute(_COLUMNS, (oids,)):
        rows = rows_of[oid]
        distinct = None
        if n_distinct is not None:
            distinct = int(-n_distinct * rows) if n_distinct < 0 and rows else int(n_distinct)
        width = avg_width or type_width(data_type) or 16
        columns[oid].append(ColumnStats(name, data_type, int(width), distinct=distinct or None))
    primary: dict[int, tuple[str, ...]] = {}
    unique: dict[int, list[tuple[str, ...]]] = {}
    for oid, is_primary, names in connection.execute(_KEYS, (oids,)):
        if is_primary:
            primary[oid] = tuple(names)
        else:
            unique.setdefault(oid, []).append(tuple(names))
    partitions: dict[int, list[str]] = dict(connection.execute(_PARTITION_KEYS, (oids,)).fetchall())
    return [
        TableStats(
            name,
            tuple(columns[oid]),
            schema=schema,
            rows=rows_of[oid],
            bytes=int(size) if size is not None else None,
            primary_key=primary.get(oid, ()),
            unique_keys=tuple(unique.get(oid, ())),
            partition_columns=tuple(partitions.get(oid, ())),
        )
        for oid, schema, name, _kind, _rows, size in tables
    ]
