"""DuckDB engine: a database file opened per call, read-only and locked down, in a sandbox.

Every call (EXPLAIN, execution, catalog) runs in a child process with memory, CPU, spill and
result-size limits and one deadline, killed for certain when over budget (``sandbox``):
DuckDB does not honour ``interrupt()`` while it builds a list or a string.

Lock-down (the second wall behind the analysis' allow-list): ``read_only=True`` unless writes
are allowed, ``enable_external_access=false`` (no files, network, ATTACH, COPY, external
extensions), extension autoload/autoinstall off, and ``lock_configuration=true`` so ``SET``
cannot undo any of it. DuckDB has no statement timeout of its own: the sandbox asks the child
to ``interrupt()`` at the deadline and kills it a grace later.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from querygate.analysis import ColumnStats, TableStats
from querygate.engines import sandbox
from querygate.engines.base import ResultSet, type_width
from querygate.engines.export import BATCH_ROWS, ExportStats
from querygate.errors import EngineError

LOCKED_DOWN = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "lock_configuration": True,
}
_SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")


class DuckDBSession:
    """One query's session: ``execute`` runs the statement in a sandbox child (see
    ``sandbox``); ``interrupt()`` is safe from any thread and stops it within the grace."""

    def __init__(self, engine: DuckDBEngine, timeout_s: float, allow_writes: bool) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._allow_writes = allow_writes
        self._cancel = threading.Event()
        self.handle: dict[str, Any] = {"engine": "duckdb"}
        self.temp_bytes = 0
        self.cut_by = ""

    def execute(self, sql: str, *, max_rows: int) -> ResultSet:
        payload = self._engine._payload(allow_writes=self._allow_writes, sql=sql, max_rows=max_rows)
        reply = sandbox.run(
            "querygate.engines.sandbox_tasks:duckdb_execute",
            payload,
            timeout_s=self._timeout_s,
            limits=self._engine.limits,
            cancel=self._cancel,
            on_handle=self.handle.update,
        )
        self.temp_bytes = int(reply["temp_bytes"])
        self.cut_by = str(reply["cut_by"])
        result: ResultSet = reply["result"]
        return result

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
        """The whole result of ``sql`` to the Parquet file ``path`` (see ``Session``), in
        a sandbox child like ``execute``; a stopped or failed export leaves no file."""
        payload = self._engine._payload(
            allow_writes=False,
            sql=sql,
            export_path=path,
            max_rows=max_rows,
            max_bytes=max_bytes,
            batch_rows=batch_rows,
        )
        try:
            reply = sandbox.run(
                "querygate.engines.sandbox_tasks:duckdb_export",
                payload,
                timeout_s=timeout_s,
                limits=self._engine.limits,
                cancel=self._cancel,
                on_handle=self.handle.update,
            )
        except BaseException:
            Path(path).unlink(missing_ok=True)  # the child was killed before it could
            raise
        self.temp_bytes = max(self.temp_bytes, int(reply["temp_bytes"]))
        stats: ExportStats = reply["export"]
        return stats

    def interrupt(self) -> None:
        self._cancel.set()


class DuckDBEngine:
    kind = "duckdb"

    def __init__(
        self,
        path: str,
        limits: sandbox.Limits = sandbox.DEFAULT_LIMITS,
        *,
        read_directory: str = "",
    ) -> None:
        self.path = path
        self.limits = limits
        # A data mart's file holds views over Parquet files under this directory: DuckDB may
        # read files there and nowhere else (``allowed_directories``, then external access
        # off and the configuration locked, as for every warehouse).
        self.read_directory = read_directory

    def _payload(self, **fields: Any) -> dict[str, Any]:
        return {"path": self.path, "read_directory": self.read_directory, **fields}

    def connect(self, *, allow_writes: bool = False) -> duckdb.DuckDBPyConnection:
        """An in-process connection, locked down: for tools and tests only (the portal's
        calls all go through the sandbox)."""
        try:
            return duckdb.connect(self.path, read_only=not allow_writes, config=dict(LOCKED_DOWN))
        except duckdb.Error as error:
            raise EngineError(f"cannot open DuckDB warehouse: {error}") from error

    @contextmanager
    def session(self, *, timeout_s: float, allow_writes: bool = False) -> Iterator[DuckDBSession]:
        yield DuckDBSession(self, timeout_s, allow_writes)

    def cancel(self, handle: dict[str, Any], *, terminate: bool = False) -> bool:
        # The sandbox child is stopped by the process that started it: its watcher sees the
        # query's cancel request and calls session.interrupt().
        return False

    def explain(self, sql: str, *, timeout_s: float = 2.0) -> dict[str, Any]:
        text = sandbox.run(
            "querygate.engines.sandbox_tasks:duckdb_explain",
            self._payload(sql=sql),
            timeout_s=timeout_s,
            limits=self.limits,
        )
        root = json.loads(text)[0]
        rows = _cardinality(root)
        return {"rows": rows, "cost": None, "operator": root.get("name")}

    def catalog(self, *, timeout_s: float = 600.0) -> list[TableStats]:
        """Tables, columns and types; rows, distinct counts and average widths from one scan
        per table (DuckDB keeps no NDV statistics it exposes); declared keys."""
        tables: list[TableStats] = sandbox.run(
            "querygate.engines.sandbox_tasks:duckdb_catalog",
            self._payload(),
            timeout_s=timeout_s,
            limits=self.limits,
        )
        return tables


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
        "WHERE t.table_type IN ('BASE TABLE', 'VIEW') AND table_schema NOT IN (?, ?) "
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
