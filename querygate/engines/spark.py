"""Spark SQL engine over Spark Connect (``pyspark``'s Connect client, gRPC).

The warehouse's ``connection`` is a Spark Connect URL, ``sc://host:port``, optionally with
``;ui=http://host:4040`` naming the driver's UI (its REST status API): that parameter is the
gate's own and is never sent to Spark. Every call gets its own Spark Connect session (a
fresh server-side ``SparkSession``: no temporary views, settings or functions leak from one
query to the next) with the fixed user id ``karimasu``, released when the call ends.

- **Execution** runs under a job tag (``karimasu-<hex>``, ``SparkSession.addTag``) and a
  deadline: at the runtime budget, or on a cancel, the session's operations with that tag
  are interrupted (``interruptTag``), which cancels their Spark jobs
  (``SparkContext.cancelJobsWithTag`` on the server). The statement is the one the gate
  judged, re-rendered in the ``spark`` dialect with its row limit at most the cap; rows are
  streamed (``toLocalIterator``) and counted by size like the other engines.
- **Cancel from anywhere**: ``session.handle`` holds the Spark Connect session id and the
  tag; ``cancel`` attaches a second client to that server session and interrupts the tag.
- **EXPLAIN**: ``EXPLAIN COST``: the optimized plan's root ``Statistics(sizeInBytes=...,
  rowCount=...)`` (a row count only where the tables were ``ANALYZE``d).
- **Catalog**: the metastore: ``SHOW TABLES`` per namespace, ``DESCRIBE TABLE EXTENDED`` for
  columns, partition columns and the table's statistics, and per column its
  ``distinct_count`` / ``avg_col_len`` where ``ANALYZE ... FOR ALL COLUMNS`` computed them.

Spark has no read-only session: the analysis' allow-lists and write refusal are the wall
(and the server's own configuration: run it without Hive write access where that matters).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from querygate.analysis import ColumnStats, TableStats
from querygate.engines.base import ResultSet, cap_rows, one_statement, type_width, value_size
from querygate.engines.export import (
    BATCH_ROWS,
    ExportStats,
    batches_from_rows,
    schema_of,
    write_batches,
)
from querygate.engines.sandbox import DEFAULT_LIMITS, Limits
from querygate.errors import EngineError, QueryInterrupted

log = logging.getLogger("karimasu.querygate")

USER_ID = "karimasu"

# Spark type (``DataType.simpleString()``, without parameters) -> the DuckDB type its values
# are stored as in a result's Parquet file; anything else (arrays, maps, structs, intervals)
# is stored as JSON text.
_DUCKDB_TYPES = {
    "boolean": "BOOLEAN",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamp_ntz": "TIMESTAMP",
    "string": "VARCHAR",
    "binary": "BLOB",
}
_SIZE_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}
_SIZE_UNITS["EiB"] = 2**60
_STATISTICS = re.compile(
    r"Statistics\(sizeInBytes=([\d.E+]+)\s*([KMGTPE]?i?B)(?:,\s*rowCount=([\d.E+]+))?"
)


def parse_connection(connection: str) -> tuple[str, str]:
    """``(connect_url, ui_url)`` of a warehouse connection: the Spark Connect URL without the
    gate's ``ui`` parameter, and that parameter ('' when absent).

    >>> parse_connection("sc://127.0.0.1:15002/;ui=http://127.0.0.1:4040")
    ('sc://127.0.0.1:15002', 'http://127.0.0.1:4040')
    """
    text = connection.strip()
    if not text.startswith("sc://"):
        raise EngineError("a Spark warehouse's connection is a Spark Connect URL: sc://host:port")
    base, _, params = text.partition(";")
    ui = ""
    kept = []
    for param in params.split(";") if params else []:
        key, _, value = param.partition("=")
        if key.strip() == "ui":
            ui = value.strip().rstrip("/")
        elif key.strip() not in ("user_id", "session_id"):
            kept.append(param)
    base = base.rstrip("/")
    return (base + "/;" + ";".join(kept) if kept else base), ui


def duckdb_type(simple: str) -> str:
    """The DuckDB type a Spark column's values are stored as.

    >>> duckdb_type("decimal(15,2)"), duckdb_type("array<int>"), duckdb_type("bigint")
    ('DECIMAL(15,2)', 'VARCHAR', 'BIGINT')
    """
    if simple.startswith("decimal"):
        return simple.upper()
    return _DUCKDB_TYPES.get(simple, "VARCHAR")


def _plain(value: Any, nested: bool) -> Any:
    """A result value as the other engines give it: nested values (arrays, maps, structs)
    as JSON text."""
    if not nested or value is None:
        return bytes(value) if isinstance(value, bytearray) else value
    return json.dumps(_jsonable(value), default=str, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "asDict"):
        return {k: _jsonable(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


class SparkSession:
    """One query's Spark Connect session; ``interrupt()`` is safe from any thread."""

    def __init__(self, engine: SparkEngine, timeout_s: float) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._spark = engine.connect()
        self._tag = f"karimasu-{uuid.uuid4().hex}"
        self._why = ""
        self.handle: dict[str, Any] = {
            "engine": "spark",
            "session_id": str(self._spark.session_id),
            "tag": self._tag,
        }
        self.temp_bytes = 0
        self.cut_by = ""

    def close(self) -> None:
        try:
            self._spark.stop()  # releases the server-side session
        except Exception as error:
            log.info("spark.release_failed %s", error)

    def execute(self, sql: str, *, max_rows: int) -> ResultSet:
        statement = cap_rows(one_statement(sql, "spark"), max_rows + 1).sql(dialect="spark")
        return self.run(statement, max_rows=max_rows)

    def run(self, statement: str, *, max_rows: int) -> ResultSet:
        """``statement`` as it is (already judged and rendered), under the tag and deadline."""
        timer = threading.Timer(self._timeout_s, self._stop, args=("timeout",))
        timer.daemon = True
        self._spark.addTag(self._tag)  # thread-local in the client: set in the calling thread
        timer.start()
        try:
            frame = self._spark.sql(statement)
            fields = list(frame.schema.fields)
            columns = [f.name for f in fields]
            simple = [f.dataType.simpleString() for f in fields]
            types = tuple(duckdb_type(s) for s in simple)
            nested = [t == "VARCHAR" and s != "string" for s, t in zip(simple, types, strict=True)]
            return self._fetch(frame.toLocalIterator(), columns, types, nested, max_rows)
        except EngineError:
            raise
        except Exception as error:
            raise self._failure(error) from error
        finally:
            timer.cancel()
            self._spark.removeTag(self._tag)

    def _fetch(
        self,
        rows: Iterator[Any],
        columns: list[str],
        types: tuple[str, ...],
        nested: list[bool],
        max_rows: int,
    ) -> ResultSet:
        kept: list[tuple[Any, ...]] = []
        size = 0
        limit = self._engine.limits.max_result_bytes
        for row in rows:
            if len(kept) >= max_rows:
                self.cut_by = "rows"
                return ResultSet(columns, kept, True, types)
            values = tuple(_plain(v, n) for v, n in zip(row, nested, strict=True))
            size += sum(value_size(v) for v in values)
            if size > limit:
                if not kept:
                    raise EngineError(
                        f"the first row alone is larger than the result limit of "
                        f"{limit // 1024**2} MiB: select fewer or smaller values"
                    )
                self.cut_by = "bytes"
                return ResultSet(columns, kept, True, types)
            kept.append(values)
        return ResultSet(columns, kept, False, types)

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
        """The whole result of ``sql`` to the Parquet file ``path`` (see ``Session``): rows
        streamed from the server (``toLocalIterator``, partition by partition) and written
        in Arrow batches, under the tag and a deadline of ``timeout_s``. A stopped or failed
        export leaves no file."""
        statement = cap_rows(one_statement(sql, "spark"), max_rows + 1).sql(dialect="spark")
        timer = threading.Timer(timeout_s, self._stop, args=("timeout",))
        timer.daemon = True
        self._spark.addTag(self._tag)
        timer.start()
        try:
            frame = self._spark.sql(statement)
            fields = list(frame.schema.fields)
            simple = [f.dataType.simpleString() for f in fields]
            types = [duckdb_type(t) for t in simple]
            nested = [t == "VARCHAR" and x != "string" for x, t in zip(simple, types, strict=True)]
            schema = schema_of([f.name for f in fields], types)
            rows = (
                tuple(_plain(v, n) for v, n in zip(row, nested, strict=True))
                for row in frame.toLocalIterator()
            )

            def fetch(size: int) -> list[Any]:
                if self._why:  # stopped between two partitions: nothing to interrupt then
                    raise QueryInterrupted(f"{self._why}: the export was stopped")
                return list(itertools.islice(rows, size))

            return write_batches(
                batches_from_rows(fetch, schema, batch_rows),
                schema,
                path,
                max_rows=max_rows,
                max_bytes=max_bytes,
            )
        except BaseException as error:
            Path(path).unlink(missing_ok=True)
            if isinstance(error, EngineError | KeyboardInterrupt | SystemExit):
                raise  # QueryInterrupted is an EngineError
            raise self._failure(error) from error
        finally:
            timer.cancel()
            self._spark.removeTag(self._tag)

    def _failure(self, error: BaseException) -> EngineError:
        """Spark's error as the gate's: interrupted (by a kill, the budget or Spark's own
        cancel), else the engine's first line."""
        if self._why or "OPERATION_CANCELED" in str(error):
            why = self._why or "cancelled"
            return QueryInterrupted(f"{why}: {_first_line(error)}")
        return EngineError(_first_line(error))

    def _stop(self, why: str) -> None:
        self._why = self._why or why
        try:
            self._spark.interruptTag(self._tag)
        except Exception as error:
            log.info("spark.interrupt_failed tag=%s %s", self._tag, error)

    def interrupt(self) -> None:
        self._stop("cancelled")


class SparkEngine:
    kind = "spark"

    def __init__(self, connection: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.url, self.ui_url = parse_connection(connection)
        self.limits = limits

    def connect(self, *, session_id: str | None = None) -> Any:
        """A new Spark Connect session (or, with ``session_id``, a client attached to that
        existing server session), with the gate's user id."""
        try:
            from pyspark.sql.connect.session import SparkSession as ConnectSession
        except ImportError as error:  # pragma: no cover - pyspark is a dependency
            raise EngineError(f"the Spark engine needs pyspark[connect]: {error}") from error
        self._reachable()
        params = f"user_id={USER_ID}" + (f";session_id={session_id}" if session_id else "")
        separator = ";" if "/;" in self.url else "/;"
        try:
            return ConnectSession.builder.remote(f"{self.url}{separator}{params}").create()
        except Exception as error:
            raise EngineError(f"cannot reach Spark Connect at {self.url}: {error}") from error

    def _reachable(self, timeout_s: float = 3.0) -> None:
        """``EngineError`` at once when the server's port does not answer (the Connect
        client would retry for minutes, holding a web request)."""
        address = self.url.removeprefix("sc://").split("/")[0]
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port or 15002)), timeout_s):
                pass
        except (OSError, ValueError) as error:
            raise EngineError(f"cannot reach Spark Connect at {self.url}: {error}") from error

    @contextmanager
    def session(self, *, timeout_s: float, allow_writes: bool = False) -> Iterator[SparkSession]:
        session = SparkSession(self, timeout_s)
        try:
            yield session
        finally:
            session.close()

    def cancel(self, handle: dict[str, Any], *, terminate: bool = False) -> bool:
        """Interrupt the handle's tag in its Spark Connect session, from any process: the
        server cancels the Spark jobs of those operations. True when Spark named at least
        one operation it interrupted."""
        session_id, tag = handle.get("session_id"), handle.get("tag")
        if not session_id or not tag:
            return False
        try:
            client = self.connect(session_id=str(session_id))
        except EngineError as error:
            log.info("spark.cancel_unreachable %s", error)
            return False
        try:
            interrupted = client.interruptTag(str(tag))
        except Exception as error:
            log.info("spark.cancel_failed tag=%s %s", tag, _first_line(error))
            return False
        finally:
            client.client.close()  # the channel only: the session belongs to its executor
        return bool(interrupted)

    def jobs(self, handle: dict[str, Any]) -> list[dict[str, Any]]:
        """The Spark jobs of ``handle``'s session as Spark's status API (the driver UI's REST
        ``/api/v1/applications/<id>/jobs``) reports them: ``jobId``, ``status`` (RUNNING,
        SUCCEEDED, FAILED...), ``submissionTime``, ``completionTime``. How a kill is checked:
        Spark tags each job of a Spark Connect operation with its session id."""
        if not self.ui_url:
            raise EngineError("the warehouse's connection names no Spark UI (;ui=http://...)")
        session_id = str(handle.get("session_id", ""))
        found = []
        for app in _get_json(f"{self.ui_url}/api/v1/applications"):
            for job in _get_json(f"{self.ui_url}/api/v1/applications/{app['id']}/jobs"):
                if any(session_id in tag for tag in job.get("jobTags", [])):
                    found.append(job)
        return found

    def running_jobs(self, handle: dict[str, Any]) -> list[int]:
        """Ids of ``handle``'s jobs that Spark reports running (``jobs``)."""
        return [int(j["jobId"]) for j in self.jobs(handle) if j.get("status") == "RUNNING"]

    def explain(self, sql: str, *, timeout_s: float = 2.0) -> dict[str, Any]:
        statement = one_statement(sql, "spark").sql(dialect="spark")
        with self.session(timeout_s=timeout_s) as session:
            result = session.run(f"EXPLAIN COST {statement}", max_rows=10)
        text = str(result.rows[0][0]) if result.rows else ""
        return plan_statistics(text)

    def catalog(self, *, timeout_s: float = 600.0) -> list[TableStats]:
        """Tables of every namespace of the session catalog, with Spark's statistics."""
        deadline = time.monotonic() + timeout_s
        spark = self.connect()
        try:
            tables = []
            for (namespace,) in _collect(spark, "SHOW NAMESPACES"):
                for row in _collect(spark, f"SHOW TABLES IN `{namespace}`"):
                    if bool(row[2]):  # temporary views belong to a session, not the catalog
                        continue
                    if time.monotonic() > deadline:
                        raise QueryInterrupted("timeout: the catalog refresh ran too long")
                    tables.append(_table_stats(spark, str(namespace), str(row[1])))
            return tables
        except (EngineError, QueryInterrupted):
            raise
        except Exception as error:
            raise EngineError(f"cannot read the Spark catalog: {_first_line(error)}") from error
        finally:
            spark.stop()


def plan_statistics(text: str) -> dict[str, Any]:
    """Rows and bytes of the root of an ``EXPLAIN COST`` optimized plan.

    >>> plan_statistics("== Optimized Logical Plan ==\\nFilter x, Statistics(sizeInBytes="
    ...                 "1.5 KiB, rowCount=25)")
    {'rows': 25, 'cost': None, 'bytes': 1536}
    """
    optimized = text.split("== Optimized Logical Plan ==", 1)[-1]
    match = _STATISTICS.search(optimized)
    if match is None:
        return {"rows": None, "cost": None, "bytes": None}
    size = int(float(match.group(1)) * _SIZE_UNITS.get(match.group(2), 1))
    rows = int(float(match.group(3))) if match.group(3) else None
    return {"rows": rows, "cost": None, "bytes": size}


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _collect(spark: Any, sql: str) -> list[Any]:
    return list(spark.sql(sql).collect())


def _describe(spark: Any, qualified: str) -> tuple[list[tuple[str, str]], list[str], str]:
    """Columns (name, type), partition columns and the ``Statistics`` text of a table, from
    ``DESCRIBE TABLE EXTENDED``'s sections."""
    columns: list[tuple[str, str]] = []
    partitions: list[str] = []
    statistics = ""
    section = "columns"
    for name, data_type, _comment in _collect(spark, f"DESCRIBE TABLE EXTENDED {qualified}"):
        name, data_type = str(name or "").strip(), str(data_type or "").strip()
        if name == "# Partition Information":
            section = "partitions"
        elif not name or name.startswith("# Detailed"):
            section = "details"
        elif name.startswith("#"):
            continue
        elif section == "columns":
            columns.append((name, data_type))
        elif section == "partitions":
            partitions.append(name)
        elif name == "Statistics":
            statistics = data_type
    return columns, partitions, statistics


def _table_stats(spark: Any, namespace: str, table: str) -> TableStats:
    qualified = f"{_quote(namespace)}.{_quote(table)}"
    columns, partitions, statistics = _describe(spark, qualified)
    size, rows = _table_statistics(statistics)
    stats = []
    for name, data_type in columns:
        width, distinct = type_width(data_type.upper()), None
        if rows is not None:  # ANALYZE ran: ask for the column's own statistics
            facts = {
                str(k): str(v)
                for k, v in _collect(spark, f"DESCRIBE TABLE EXTENDED {qualified} {_quote(name)}")
            }
            distinct = _int(facts.get("distinct_count"))
            if width is None:
                width = _int(facts.get("avg_col_len"))
        stats.append(ColumnStats(name, data_type, max(1, width or 16), distinct=distinct or 0))
    row_width = sum(c.avg_width for c in stats) or 1
    if rows is None and size is not None:
        rows = max(1, size // row_width)  # no row count: Spark's file size over the row width
    return TableStats(
        table,
        tuple(stats),
        schema=namespace,
        rows=rows or 0,
        bytes=size if size is not None else row_width * (rows or 0),
        partition_columns=tuple(partitions),
    )


def _table_statistics(text: str) -> tuple[int | None, int | None]:
    """``"1675 bytes, 25 rows"`` -> ``(1675, 25)``; either may be missing."""
    size = re.search(r"(\d+) bytes", text)
    rows = re.search(r"(\d+) rows", text)
    return (int(size.group(1)) if size else None, int(rows.group(1)) if rows else None)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "NULL") else None
    except ValueError:
        return None


def spark_time(text: str) -> float:
    """A time of Spark's status API (``2026-11-30T03:09:27.160GMT``) as a Unix timestamp.

    >>> spark_time("1970-01-01T00:00:01.500GMT")
    1.5
    """
    from datetime import UTC, datetime

    parsed = datetime.strptime(text.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f")
    return parsed.replace(tzinfo=UTC).timestamp()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the admin's UI URL
        return json.loads(response.read())
