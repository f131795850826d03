"""DuckDB engine: a database file opened per query, read-only and locked down.

Lock-down (the second wall behind the analysis' allow-list): ``read_only=True`` unless writes
are allowed, ``enable_external_access=false`` (no files, network, ATTACH, COPY, external
extensions), extension autoload/autoinstall off, and ``lock_configuration=true`` so ``SET``
cannot undo any of it. DuckDB has no statement timeout of its own, so the session starts a
timer that calls ``interrupt()`` at the deadline; ``interrupt()`` is the kill.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from querygate.analysis import ColumnStats, TableStats
from querygate.engines.base import ResultSet, fetch_capped, type_width
from querygate.errors import EngineError, QueryInterrupted

LOCKED_DOWN = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "lock_configuration": True,
}
_SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")


class DuckDBSession:
    """One connection running one query; ``interrupt()`` is safe from any thread."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, timeout_s: float) -> None:
        self._connection = connection
        self.handle: dict[str, Any] = {"engine": "duckdb"}
        self.timed_out = False
        self._timer = threading.Timer(timeout_s, self._timeout)
        self._timer.daemon = True

    def _timeout(self) -> None:
        self.timed_out = True
        self.interrupt()

    def execute(self, sql: str, *, max_rows: int) -> ResultSet:
        self._timer.start()
        try:
            cursor = self._connection.execute(sql)
            return fetch_capped(cursor, max_rows, type_of=lambda d: str(d[1]))
        except duckdb.InterruptException as error:
            reason = "timeout" if self.timed_out else "interrupted"
            raise QueryInterrupted(f"{reason}: {error}") from error
        except duckdb.Error as error:
            raise EngineError(str(error)) from error
        finally:
            self._timer.cancel()

    def interrupt(self) -> None:
        self._connection.interrupt()


class DuckDBEngine:
    kind = "duckdb"

    def __init__(self, path: str) -> None:
        self.path = path

    def connect(self, *, allow_writes: bool = False) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(self.path, read_only=not allow_writes, config=dict(LOCKED_DOWN))
        except duckdb.Error as error:
            raise EngineError(f"cannot open DuckDB warehouse: {error}") from error

    @contextmanager
    def session(self, *, timeout_s: float, allow_writes: bool = False) -> Iterator[DuckDBSession]:
        connection = self.connect(allow_writes=allow_writes)
        try:
            yield DuckDBSession(connection, timeout_s)
        finally:
            connection.close()

    def cancel(self, handle: dict[str, Any], *, terminate: bool = False) -> bool:
        # An in-process DuckDB connection can only be interrupted by its owner: the
        # executing process watches the query's row and calls session.interrupt().
        return False

    def explain(self, sql: str) -> dict[str, Any]:
        connection = self.connect()
        try:
            plan = connection.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchall()
        except duckdb.Error as error:
            raise EngineError(str(error)) from error
        finally:
            connection.close()
        root = json.loads(plan[0][1])[0]
        rows = _cardinality(root)
        return {"rows": rows, "cost": None, "operator": root.get("name")}

    def catalog(self) -> list[TableStats]:
        """Tables, columns and types; rows, distinct counts and average widths from one scan
        per table (DuckDB keeps no NDV statistics it exposes); declared keys."""
        connection = self.connect()
        try:
            return _read_catalog(connection)
        except duckdb.Error as error:
            raise EngineError(str(error)) from error
        finally:
            connection.close()


def _cardinality(node: dict[str, Any]) -> int | None:
    """The top-most positive "Estimated Cardinality" (DuckDB reports 0 on some final
    projections)."""
    value = str(node.get("extra_info", {}).get("Estimated Cardinality", ""))
    digits = re.sub(r"\D", "", value)
    if digits and int(digits) > 0:
        return int(digits)
    for child in node.get("children", []):
        found = _cardinality(child)
        if found is not None:
            return found
    return None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read_catalog(connection: duckdb.DuckDBPyConnection) -> list[TableStats]:
    columns: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    rows = connection.execute(
        "SELECT table_schema, table_name, column_name, data_type "
        "FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_catalog, table_schema, table_name) "
        "WHERE t.table_type = 'BASE TABLE' AND table_schema NOT IN (?, ?) "
        "ORDER BY table_schema, table_name, ordinal_position",
        list(_SYSTEM_SCHEMAS),
    ).fetchall()
    for schema, table, column, data_type in rows:
        columns[(schema, table)].append((column, data_type))
    keys: dict[tuple[str, str], dict[str, list[tuple[str, ...]]]] = defaultdict(
        lambda: {"PRIMARY KEY": [], "UNIQUE": []}
    )
    for schema, table, kind, names in connection.execute(
        "SELECT schema_name, table_name, constraint_type, constraint_column_names "
        "FROM duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
    ).fetchall():
        keys[(schema, table)][kind].append(tuple(names))
    tables = []
    for (schema, table), cols in columns.items():
        tables.append(_table_stats(connection, schema, table, cols, keys.get((schema, table))))
    return tables


def _table_stats(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    cols: list[tuple[str, str]],
    keys: dict[str, list[tuple[str, ...]]] | None,
) -> TableStats:
    selects = ["count(*)"]
    for name, data_type in cols:
        selects.append(f"approx_count_distinct({_quote(name)})")
        if type_width(data_type) is None:
            selects.append(f"avg(strlen(CAST({_quote(name)} AS VARCHAR)))")
    qualified = f"{_quote(schema)}.{_quote(table)}"
    row = connection.execute(f"SELECT {', '.join(selects)} FROM {qualified}").fetchone()  # noqa: S608 - names come from information_schema, quoted
    assert row is not None
    values = iter(row)
    count = int(next(values))
    stats = []
    for name, data_type in cols:
        distinct = next(values)
        width = type_width(data_type)
        if width is None:
            average = next(values)
            width = max(1, round(average)) if average is not None else 16
        stats.append(ColumnStats(name, data_type, width, distinct=int(distinct or 0)))
    primary = keys["PRIMARY KEY"][0] if keys and keys["PRIMARY KEY"] else ()
    unique = tuple(keys["UNIQUE"]) if keys else ()
    return TableStats(
        table,
        tuple(stats),
        schema=schema,
        rows=count,
        bytes=sum(c.avg_width for c in stats) * count,
        primary_key=tuple(primary),
        unique_keys=unique,
    )
