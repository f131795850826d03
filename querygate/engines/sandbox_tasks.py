"""What runs inside a sandbox child (see ``sandbox``): the DuckDB calls.

Each task takes ``(payload, limits, channel)`` and returns a picklable value. They run in a
forked child under the sandbox's limits; nothing here imports Django.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import duckdb

from querygate.engines.base import fetch_within
from querygate.engines.sandbox import MIB, Limits


class EngineFailure(Exception):
    """An engine error to report as such (``sandbox_kind`` tells the caller which)."""

    def __init__(self, message: str, kind: str = "engine") -> None:
        super().__init__(message)
        self.sandbox_kind = kind


def _connect(payload: dict[str, Any], limits: Limits, temp_dir: str | None = None) -> Any:
    from querygate.engines.duckdb import LOCKED_DOWN

    config: dict[str, Any] = {
        # Below the address-space limit, so DuckDB refuses cleanly before the kernel does.
        "memory_limit": f"{max(64, int(limits.memory_bytes * 0.5) // MIB)}MB",
        "threads": max(1, limits.threads),
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
    }
    if temp_dir is not None:
        config["temp_directory"] = temp_dir
        config["max_temp_directory_size"] = f"{max(1, limits.temp_bytes // MIB)}MB"
    try:
        connection = duckdb.connect(
            payload["path"], read_only=not payload.get("allow_writes"), config=config
        )
        if payload.get("read_directory"):  # a data mart: its views read Parquet there, only
            directory = str(payload["read_directory"]).rstrip("/") + "/"
            connection.execute("SET allowed_directories = ?", [[directory]])
        # The private temp directory is set; now close every door, for good.
        for name, value in LOCKED_DOWN.items():
            connection.execute(f"SET {name} = {str(value).lower()}")
    except duckdb.Error as error:
        raise EngineFailure(f"cannot open DuckDB warehouse: {error}") from error
    return connection


def _one_statement(connection: Any, sql: str) -> Any:
    """DuckDB's own reading of ``sql`` as exactly one statement (``execute`` would run every
    ``;``-separated statement of a text)."""
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as error:
        raise EngineFailure(str(error)) from error
    if len(statements) != 1:
        raise EngineFailure(f"exactly one statement is run at a time ({len(statements)} were sent)")
    return statements[0]


def _failure(error: duckdb.Error, limits: Limits) -> EngineFailure:
    """DuckDB's error as the sandbox reports it: an interrupt, the memory budget, or the
    engine's own text."""
    if isinstance(error, duckdb.InterruptException):
        return EngineFailure(f"interrupted: {error}", "interrupted")
    if isinstance(error, duckdb.OutOfMemoryException):
        return EngineFailure(
            f"the query needs more than its memory budget "
            f"({limits.memory_bytes // MIB} MiB): {error}",
            "memory",
        )
    return EngineFailure(str(error))


def _peak_watcher(directory: str, stop: threading.Event, peak: list[int]) -> threading.Thread:
    """Sample the size of ``directory`` every 50 ms; the peak is the spill the query used."""

    def sample() -> None:
        while not stop.wait(0.05):
            total = 0
            for root, _dirs, files in os.walk(directory):
                for name in files:
                    try:
                        total += os.path.getsize(os.path.join(root, name))
                    except OSError:
                        continue
            peak[0] = max(peak[0], total)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return thread


def duckdb_execute(payload: dict[str, Any], limits: Limits, channel: Any) -> dict[str, Any]:
    """Run one statement; return at most ``max_rows`` rows and ``max_result_bytes`` bytes
    (``truncated`` when more were available) and the peak spill in bytes."""
    temp_dir = tempfile.mkdtemp(prefix="karimasu-duckdb-")
    stop, peak = threading.Event(), [0]
    watcher = _peak_watcher(temp_dir, stop, peak)
    try:
        connection = _connect(payload, limits, temp_dir)
        channel.send_handle({"engine": "duckdb", "pid": os.getpid()})
        channel.on_interrupt(connection.interrupt)
        try:
            cursor = connection.execute(_one_statement(connection, payload["sql"]))
            result, cut_by = fetch_within(
                cursor, payload["max_rows"], limits.max_result_bytes, lambda d: str(d[1])
            )
        except duckdb.Error as error:
            raise _failure(error, limits) from error
        finally:
            connection.close()
    finally:
        stop.set()
        watcher.join(timeout=1)
        shutil.rmtree(temp_dir, ignore_errors=True)
    return {"result": result, "cut_by": cut_by, "temp_bytes": peak[0]}


def duckdb_explain(payload: dict[str, Any], limits: Limits, channel: Any) -> str:
    """The JSON text of ``EXPLAIN (FORMAT JSON)`` of one statement."""
    connection = _connect(payload, limits)
    channel.on_interrupt(connection.interrupt)
    try:
        statement = _one_statement(connection, payload["sql"])
        explain = _one_statement(connection, f"EXPLAIN (FORMAT JSON) {statement.query}")
        plan = connection.execute(explain).fetchall()
    except duckdb.InterruptException as error:
        raise EngineFailure(f"interrupted: {error}", "interrupted") from error
    except duckdb.Error as error:
        raise EngineFailure(str(error)) from error
    finally:
        connection.close()
    return str(plan[0][1])


def duckdb_catalog(payload: dict[str, Any], limits: Limits, channel: Any) -> list[Any]:
    """The warehouse's tables with their statistics (``duckdb._read_catalog``)."""
    from querygate.engines.duckdb import _read_catalog

    temp_dir = tempfile.mkdtemp(prefix="karimasu-duckdb-")
    try:
        connection = _connect(payload, limits, temp_dir)
        channel.on_interrupt(connection.interrupt)
        try:
            return _read_catalog(connection)
        except duckdb.Error as error:
            raise EngineFailure(str(error)) from error
        finally:
            connection.close()
    finally:
        shutil.rmtree(Path(temp_dir), ignore_errors=True)


#: Types exported as themselves; anything else (nested, JSON, BLOB, INTERVAL...) as text,
#: as in the stored result (``services.results.storage_type``).
_EXPORTED = re.compile(
    r"(BOOLEAN|U?TINYINT|U?SMALLINT|U?INTEGER|U?BIGINT|HUGEINT|FLOAT|REAL|DOUBLE|"
    r"DECIMAL\(\d+,\d+\)|VARCHAR|DATE|TIME|TIMESTAMP(_NS|_MS|_S)?|TIMESTAMP WITH TIME ZONE|"
    r"UUID)"
)


def duckdb_export(payload: dict[str, Any], limits: Limits, channel: Any) -> dict[str, Any]:
    """Run one statement and write its whole result to the Parquet file
    ``payload["export_path"]`` in Arrow batches (DuckDB's streaming Arrow reader: one batch
    in memory at a time), up to ``max_rows`` rows and ``max_bytes``; see
    ``export.write_batches``. On any failure (an interrupt included) the partial file is
    removed before the error is reported. pyarrow is imported here, not preloaded in the
    zygote: its libraries would count in every child's address space (``RLIMIT_AS``)."""
    import pyarrow as pa

    from querygate.engines.export import BATCH_ROWS, write_batches

    temp_dir = tempfile.mkdtemp(prefix="karimasu-duckdb-")
    stop, peak = threading.Event(), [0]
    watcher = _peak_watcher(temp_dir, stop, peak)
    path = Path(payload["export_path"])
    try:
        connection = _connect(payload, limits, temp_dir)
        channel.send_handle({"engine": "duckdb", "pid": os.getpid()})
        channel.on_interrupt(connection.interrupt)
        try:
            query = _one_statement(connection, payload["sql"]).query
            kinds = connection.execute(f"DESCRIBE {query}").fetchall()
            select = ", ".join(
                f"#{i}" if _EXPORTED.fullmatch(str(kind).upper()) else f"CAST(#{i} AS VARCHAR)"
                for i, (_name, kind, *_rest) in enumerate(kinds, start=1)
            )
            cursor = connection.execute(f"SELECT {select} FROM ({query}) AS karimasu_export")  # noqa: S608 - the one judged statement, wrapped
            reader = cursor.to_arrow_reader(int(payload.get("batch_rows") or BATCH_ROWS))
            names = [str(name) for name, *_rest in kinds]
            schema = pa.schema([f.with_name(n) for f, n in zip(reader.schema, names, strict=True)])
            stats = write_batches(
                reader,
                schema,
                path,
                max_rows=payload["max_rows"],
                max_bytes=payload["max_bytes"],
            )
        except duckdb.Error as error:
            raise _failure(error, limits) from error
        finally:
            connection.close()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        stop.set()
        watcher.join(timeout=1)
        shutil.rmtree(temp_dir, ignore_errors=True)
    return {"export": stats, "temp_bytes": peak[0]}
