"""PostgreSQL engine (psycopg 3).

Every session runs with ``default_transaction_read_only=on`` (unless writes are allowed),
``statement_timeout``, ``work_mem`` and ``temp_file_limit`` set at connect time, the
engine-side guards; a read runs as its own read-only transaction over the extended protocol
(exactly one statement, never a ``;``-separated list), re-rendered with its row limit at
most the cap (only the capped rows are produced and cross the wire). The admin's DSN should
name a role without write grants, the third wall. The kill is ``pg_cancel_backend(pid)``
from a second connection, checked against the backend's start time so a reused pid is never
signalled; after a grace the watchdog escalates to ``pg_terminate_backend``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors

from querygate.analysis import ColumnStats, TableStats
from querygate.engines.base import (
    ResultSet,
    cap_rows,
    fetch_within,
    one_statement,
    type_width,
)
from querygate.engines.export import (
    BATCH_ROWS,
    ExportStats,
    batches_from_rows,
    schema_of,
    write_batches,
)
from querygate.engines.sandbox import DEFAULT_LIMITS, MIB, Limits
from querygate.errors import EngineError, QueryInterrupted

log = logging.getLogger("karimasu.querygate")

_SIGNAL = (
    "SELECT {fn}(pid) FROM pg_stat_activity WHERE pid = %s AND backend_start = %s::timestamptz"
)
_STILL_ACTIVE = (
    "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND backend_start = %s::timestamptz "
    "AND state = 'active'"
)
_CANCEL_RETRIES = 8


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
    """One backend running one query; ``interrupt()`` cancels it from a second connection.

    The statement is parsed and re-rendered with a row limit of at most ``max_rows + 1``
    (so only those rows are produced and cross the wire) and runs prepared, over the
    extended protocol (one statement, never a ``;``-separated list); rows are kept while
    their size stays within ``max_result_bytes``."""

    def __init__(self, engine: PostgresEngine, connection: psycopg.Connection, writes: bool):
        self._engine = engine
        self._connection = connection
        self._writes = writes
        self.temp_bytes = 0
        self.cut_by = ""
        self._stopped = threading.Event()
        row = connection.execute(
            "SELECT pg_backend_pid(), backend_start::text FROM pg_stat_activity "
            "WHERE pid = pg_backend_pid()"
        ).fetchone()
        connection.commit()
        assert row is not None
        self.handle: dict[str, Any] = {"engine": "postgres", "pid": row[0], "backend_start": row[1]}

    def execute(self, sql: str, *, max_rows: int) -> ResultSet:
        connection = self._connection
        statement = _capped_statement(sql, max_rows + 1)
        spill = _SpillSampler(self._engine, self.handle["pid"])
        try:
            with spill, connection.cursor() as cursor:
                # One statement over the extended protocol (a pipeline never uses the simple
                # query protocol, so a second ``;``-separated statement is refused). Reads run
                # in autocommit on a read-only-by-default session: no BEGIN round trip before
                # the query, so a cancel that sees the backend active reaches the query.
                with connection.pipeline():
                    cursor.execute(statement.encode())
                result, self.cut_by = fetch_within(
                    cursor, max_rows, self._engine.limits.max_result_bytes, duckdb_type
                )
            if self._writes:
                connection.commit()
            return result
        except (errors.QueryCanceled, errors.AdminShutdown) as error:
            raise QueryInterrupted(str(error).strip()) from error
        except errors.ConfigurationLimitExceeded as error:
            raise EngineError(
                f"{str(error).strip()} (the query spilled more temporary data than its "
                f"budget of {self._engine.limits.temp_bytes // MIB} MiB)"
            ) from error
        except psycopg.OperationalError as error:
            if connection.closed:
                raise QueryInterrupted(f"backend terminated: {error}") from error
            raise EngineError(str(error).strip()) from error
        except psycopg.Error as error:
            raise EngineError(str(error).strip()) from error
        finally:
            self.temp_bytes = spill.peak

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
        """The whole result of ``sql`` to the Parquet file ``path`` (see ``Session``): a
        server-side cursor (``DECLARE`` in a read-only transaction) fetched ``batch_rows``
        rows at a time, each batch converted to Arrow with the schema of the columns'
        DuckDB types; ``statement_timeout`` bounds each fetch, ``timeout_s`` (checked
        before each fetch) and the query's watcher the whole. A cancel that lands between
        two FETCHes is dropped by the server (nothing runs then), so ``interrupt()`` also
        sets a flag checked before each FETCH. A stopped or failed export leaves no file."""
        connection = self._connection
        statement = _capped_statement(sql, max_rows + 1)
        spill = _SpillSampler(self._engine, self.handle["pid"])
        deadline = time.monotonic() + timeout_s
        try:
            with (
                spill,
                connection.transaction(),
                connection.cursor(name="karimasu_export") as cursor,
            ):
                cursor.execute(statement.encode())
                description = cursor.description or ()
                schema = schema_of(
                    [d.name for d in description], [duckdb_type(d) for d in description]
                )

                def fetch(size: int) -> list[Any]:
                    if self._stopped.is_set():
                        raise QueryInterrupted("interrupted: the export was cancelled")
                    if time.monotonic() > deadline:  # statement_timeout bounds one FETCH
                        raise QueryInterrupted(
                            f"timeout: the export passed its {timeout_s:g} s budget"
                        )
                    return cursor.fetchmany(size)

                return write_batches(
                    batches_from_rows(fetch, schema, batch_rows),
                    schema,
                    path,
                    max_rows=max_rows,
                    max_bytes=max_bytes,
                )
        except BaseException as error:
            Path(path).unlink(missing_ok=True)
            if isinstance(error, errors.QueryCanceled | errors.AdminShutdown):
                raise QueryInterrupted(str(error).strip()) from error
            if isinstance(error, psycopg.OperationalError) and connection.closed:
                raise QueryInterrupted(f"backend terminated: {error}") from error
            if isinstance(error, psycopg.Error):
                raise EngineError(str(error).strip()) from error
            raise
        finally:
            self.temp_bytes = max(self.temp_bytes, spill.peak)

    def interrupt(self) -> None:
        self._stopped.set()  # an export checks it before each FETCH (see ``export``)
        self._engine.cancel(self.handle)


def _capped_statement(sql: str, cap: int) -> str:
    """One statement, re-rendered, returning at most ``cap`` rows (``base.cap_rows``): only
    those rows are produced and cross the wire. ``EngineError`` unless exactly one."""
    return cap_rows(one_statement(sql, "postgres"), cap).sql(dialect="postgres")


class _SpillSampler:
    """Measures a backend's temporary files while its statement runs: from 0.25 s on, every
    0.25 s, the size of its ``pgsql_tmp<pid>.*`` files (``pg_ls_tmpdir()``, which needs the
    ``pg_monitor`` role or superuser; without it nothing is measured, once logged). The peak
    becomes the session's ``temp_bytes`` (counted in the daily bytes budget)."""

    def __init__(self, engine: PostgresEngine, pid: int) -> None:
        self._engine = engine
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"spill-{pid}")
        self.peak = 0

    def __enter__(self) -> _SpillSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        if self._stop.wait(0.25):
            return
        try:
            with self._engine.connect(timeout_s=5, autocommit=True) as connection:
                while True:
                    row = connection.execute(_SPILL, (f"pgsql_tmp{self._pid}.%",)).fetchone()
                    self.peak = max(self.peak, int(row[0]) if row and row[0] else 0)
                    if self._stop.wait(0.25):
                        return
        except (psycopg.Error, EngineError) as error:
            log.info("postgres.spill_not_measured pid=%s %s", self._pid, str(error).strip())


_SPILL = "SELECT coalesce(sum(size), 0) FROM pg_ls_tmpdir() WHERE name LIKE %s"


class PostgresEngine:
    kind = "postgres"

    def __init__(self, dsn: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.dsn = dsn
        self.limits = limits

    def connect(
        self, *, timeout_s: float = 30.0, allow_writes: bool = False, autocommit: bool = False
    ) -> psycopg.Connection:
        """A connection with ``statement_timeout`` and, unless writes are allowed, read-only
        transactions; ``work_mem`` and ``temp_file_limit`` from the limits where the role may
        set them (``temp_file_limit`` needs superuser or ``GRANT SET ON PARAMETER``: else the
        role's own setting stands, see docs/querygate.md)."""
        options = f"-c statement_timeout={max(1, int(timeout_s * 1000))}"
        if not allow_writes:
            options += " -c default_transaction_read_only=on"
        try:
            connection = psycopg.connect(
                self.dsn, options=options, autocommit=autocommit, connect_timeout=10
            )
        except psycopg.Error as error:
            raise EngineError(f"cannot connect to the PostgreSQL warehouse: {error}") from error
        self._limit_session(connection)
        return connection

    def _limit_session(self, connection: psycopg.Connection) -> None:
        work_mem = max(64, self.limits.memory_bytes // 8 // 1024)  # kB, per sort or hash
        for name, value in (
            ("work_mem", f"{work_mem}kB"),
            ("temp_file_limit", f"{max(1, self.limits.temp_bytes // 1024)}kB"),
        ):
            try:
                with connection.transaction():
                    connection.execute(
                        "SELECT set_config(%s, %s, false)", (name, value), prepare=False
                    )
            except errors.InsufficientPrivilege:
                log.info("postgres.session_limit_not_settable name=%s", name)
            except psycopg.Error as error:
                connection.close()
                raise EngineError(str(error).strip()) from error

    @contextmanager
    def session(self, *, timeout_s: float, allow_writes: bool = False) -> Iterator[PostgresSession]:
        connection = self.connect(
            timeout_s=timeout_s, allow_writes=allow_writes, autocommit=not allow_writes
        )
        try:
            yield PostgresSession(self, connection, allow_writes)
        finally:
            connection.close()

    def cancel(self, handle: dict[str, Any], *, terminate: bool = False) -> bool:
        if handle.get("engine") != "postgres" or "pid" not in handle:
            return False
        function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
        key = (handle["pid"], handle["backend_start"])
        with self.connect(timeout_s=10, autocommit=True) as connection:
            row = connection.execute(_SIGNAL.format(fn=function).encode(), key).fetchone()
            sent = bool(row and row[0])
            # Over the extended protocol a cancel that lands between two protocol messages
            # (Parse, Bind, Execute: the backend shows "active" but is reading) is ignored by
            # PostgreSQL. Signal again while the same statement is still active.
            for _ in range(_CANCEL_RETRIES if sent and not terminate else 0):
                time.sleep(0.1)
                active = connection.execute(_STILL_ACTIVE, key).fetchone()
                if not active:
                    break
                connection.execute(_SIGNAL.format(fn=function).encode(), key)
        return sent

    def explain(self, sql: str, *, timeout_s: float = 2.0) -> dict[str, Any]:
        """The planner's estimate of one statement (``prepare=True``: the extended protocol,
        so a second ``;``-separated statement is refused by the server, never run)."""
        with self.connect(timeout_s=timeout_s) as connection:
            try:
                row = connection.execute(
                    f"EXPLAIN (FORMAT JSON) {sql}".encode(), prepare=True
                ).fetchone()
            except errors.QueryCanceled as error:
                raise QueryInterrupted(f"timeout: {str(error).strip()}") from error
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

    def catalog(self, *, timeout_s: float = 600.0) -> list[TableStats]:
        with self.connect(timeout_s=timeout_s) as connection:
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
