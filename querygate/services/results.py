"""Query results as Parquet files: write one per finished query, page through it, download
it, and purge it after the retention.

Files live in ``QUERYGATE_RESULTS_DIR`` (default ``VAR_DIR/query-results``) as
``query-<id>.parquet``; ``Query.result_file`` holds the name (relative, so the directory can
move). DuckDB writes and reads them in a private in-memory connection: this is the portal's
own access, never user SQL (the analysis refuses ``read_parquet`` in queries). The fetched
rows are staged as JSON lines and loaded with the columns' DuckDB types (the engine's, from
the cursor description), which is ~100x faster than binding 10,000 rows as parameters.

A file is written to a temporary name and renamed into place, so a failure mid-write leaves
no file that could be served.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils.translation import gettext as _

from querygate.engines.base import ResultSet
from querygate.engines.export import unique_names
from querygate.errors import QueryGateError, ResultsExpired
from querygate.models import AnalyzeAudit, Query

log = logging.getLogger("karimasu.querygate")

#: Rows of the result kept in ``Query.result`` for the detail view.
PREVIEW_ROWS = 100
#: Types stored as themselves; anything else (nested, JSON, BLOB, INTERVAL...) as text.
_SCALAR = re.compile(
    r"(BOOLEAN|U?TINYINT|U?SMALLINT|U?INTEGER|U?BIGINT|U?HUGEINT|FLOAT|REAL|DOUBLE|"
    r"DECIMAL\(\d+,\d+\)|VARCHAR|DATE|TIME|TIMESTAMP(_NS|_MS|_S)?|TIMESTAMP WITH TIME ZONE|"
    r"TIMESTAMPTZ|UUID)"
)
_STALE_TEMP = timedelta(hours=1)


class ResultStorageError(QueryGateError):
    """The result could not be written (disk, permissions, a value DuckDB refused)."""

    code = "result_storage_failed"


def results_dir() -> Path:
    return Path(getattr(settings, "QUERYGATE_RESULTS_DIR", settings.VAR_DIR / "query-results"))


def retention() -> timedelta:
    return timedelta(hours=float(getattr(settings, "QUERYGATE_RESULTS_RETENTION_HOURS", 168)))


def file_name(query_id: int) -> str:
    return f"query-{query_id}.parquet"


def export_file_name(query_id: int) -> str:
    """The file of a query's full export (``Query.export_file``)."""
    return f"query-{query_id}.export.parquet"


def storage_type(engine_type: str) -> str:
    """The DuckDB type a column is stored as.

    >>> storage_type("DECIMAL(15,2)"), storage_type("INTEGER[]")
    ('DECIMAL(15,2)', 'VARCHAR')
    """
    return engine_type if _SCALAR.fullmatch(engine_type.upper()) else "VARCHAR"


def _plain(value: Any) -> Any:
    """A JSON-able stand-in for a value json cannot write (read back with the column type)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _as_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=_plain)
    return _plain(value)


def write_result(query_id: int, result: ResultSet) -> str:
    """Write ``result`` to ``query-<id>.parquet`` atomically; return the file's name.

    Raises ``ResultStorageError`` (nothing is left behind) when it cannot."""
    directory = results_dir()
    name = file_name(query_id)
    token = uuid.uuid4().hex
    staging = directory / f".{name}.{token}.jsonl"
    partial = directory / f".{name}.{token}.tmp"
    types = [storage_type(t) for t in result.types] or ["VARCHAR"] * len(result.columns)
    keys = [f"c{i}" for i in range(len(result.columns))]
    text = [t == "VARCHAR" for t in types]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with staging.open("w", encoding="utf-8") as out:
            for row in result.rows:
                values = (_as_text(v) if t else v for v, t in zip(row, text, strict=True))
                out.write(json.dumps(dict(zip(keys, values, strict=True)), default=_plain))
                out.write("\n")
        spec = ", ".join(f"'{k}': '{t}'" for k, t in zip(keys, types, strict=True))
        names = ", ".join(
            f"{k} AS {_quote(n)}" for k, n in zip(keys, unique_names(result.columns), strict=True)
        )
        with _duckdb() as connection:
            connection.execute(
                f"COPY (SELECT {names} FROM read_json(?, format='newline_delimited', "  # noqa: S608 - keys and types are ours, names quoted
                f"columns={{{spec}}})) TO '{_literal(partial)}' (FORMAT PARQUET)",
                [str(staging)],
            )
        os.replace(partial, directory / name)
    except Exception as error:  # any failure here is a storage failure, never a lost query
        _discard(partial)
        log.warning("query.result_store_failed id=%s %s", query_id, error)
        raise ResultStorageError(str(error)) from error
    finally:
        _discard(staging)
    return name


def _discard(path: Path) -> None:
    # OSError: the directory itself is unusable, so there is nothing to clean up.
    with suppress(OSError):
        path.unlink(missing_ok=True)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")


@contextmanager
def _duckdb() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        yield connection
    finally:
        connection.close()


def jsonable(rows: list[Any]) -> list[list[Any]]:
    """Rows as the API writes them (DjangoJSONEncoder: decimals and times as strings)."""
    plain: list[list[Any]] = json.loads(json.dumps([list(r) for r in rows], cls=DjangoJSONEncoder))
    return plain


def path_of(query: Query) -> Path:
    """The file of a query's result; ``ResultsExpired`` when it was purged or is gone."""
    if query.result_expired_at is not None:
        raise ResultsExpired(
            _(
                "The result of query %(query)s was deleted after %(hours)s hours; run the "
                "query again."
            )
            % {"query": query.pk, "hours": f"{retention().total_seconds() / 3600:g}"},
            details={"query_id": query.pk, "expired_at": query.result_expired_at.isoformat()},
        )
    path = results_dir() / query.result_file
    if not path.is_file():
        raise ResultsExpired(
            _("The result file of query %(query)s is gone; run the query again.")
            % {"query": query.pk},
            details={"query_id": query.pk},
        )
    return path


def download_path(query: Query) -> Path:
    """The file downloads serve: the full export when there is one, else the stored
    result (``ResultsExpired`` when purged or gone)."""
    path = path_of(query)
    if query.export_file:
        export = results_dir() / query.export_file
        if not export.is_file():
            raise ResultsExpired(
                _("The export file of query %(id)s is gone; run the query again.")
                % {"id": query.pk},
                details={"query_id": query.pk},
            )
        return export
    return path


def download_info(query: Query) -> dict[str, Any]:
    """What a download of the query holds: ``rows``; ``complete`` (every row of the result,
    or only the first ``row_cap``); ``source`` (``export`` or ``result``) and the export's
    ``export_status`` (see ``Query.export``; None when none was needed or asked for)."""
    export = query.export or {}
    if query.export_file:
        return {
            "rows": int(export.get("rows") or 0),
            "complete": True,
            "source": "export",
            "export_status": export.get("status"),
        }
    return {
        "rows": query.row_count or 0,
        "complete": not query.truncated,
        "source": "result",
        "export_status": export.get("status"),
    }


def iter_rows(path: Path, chunk_rows: int) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of a result file in the order they were written, ``chunk_rows`` at a time,
    from one streaming scan (never the whole file in memory)."""
    with _duckdb() as connection:
        kinds = connection.execute(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
            [str(path)],
        ).fetchall()
        select = ", ".join(
            f"timezone('UTC', {_quote(n)})" if t == "TIMESTAMP WITH TIME ZONE" else _quote(n)
            for n, t in kinds
        )
        cursor = connection.execute(
            f"SELECT {select} FROM read_parquet(?, file_row_number = true) "  # noqa: S608 - names quoted, from the file
            "ORDER BY file_row_number",
            [str(path)],
        )
        zoned = [i for i, (_, t) in enumerate(kinds) if t == "TIMESTAMP WITH TIME ZONE"]
        while rows := cursor.fetchmany(chunk_rows):
            yield [_utc(row, zoned) for row in rows] if zoned else rows


def read_rows(query: Query, *, offset: int = 0, limit: int | None = None) -> list[tuple[Any, ...]]:
    """Rows ``offset`` .. ``offset + limit`` of the query's file, in the order they were
    written (by ``file_row_number``, not by scan order)."""
    path = path_of(query)
    with _duckdb() as connection:
        kinds = connection.execute(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
            [str(path)],
        ).fetchall()
        # TIMESTAMPTZ values need pytz to reach Python; read them as UTC and mark them so.
        select = ", ".join(
            f"timezone('UTC', {_quote(n)})" if t == "TIMESTAMP WITH TIME ZONE" else _quote(n)
            for n, t in kinds
        )
        end = "" if limit is None else " AND file_row_number < ?"
        params: list[Any] = [str(path), offset] + ([] if limit is None else [offset + limit])
        rows = connection.execute(
            f"SELECT {select} FROM read_parquet(?, file_row_number = true) "  # noqa: S608 - names quoted, from the file
            f"WHERE file_row_number >= ?{end} ORDER BY file_row_number",
            params,
        ).fetchall()
    zoned = [i for i, (_, t) in enumerate(kinds) if t == "TIMESTAMP WITH TIME ZONE"]
    if zoned:
        rows = [_utc(row, zoned) for row in rows]
    return rows


def _utc(row: tuple[Any, ...], positions: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            values[i] = values[i].replace(tzinfo=dt.UTC)
    return tuple(values)


def result_page(query: Query, *, page: int, size: int) -> tuple[list[str], list[list[Any]]]:
    """Column names and the JSON rows of one page (1-based)."""
    columns = (query.result or {}).get("columns", [])
    if not query.result_file:  # no columns, or stored before results were files
        rows = (query.result or {}).get("rows", [])
        return columns, rows[(page - 1) * size : page * size]
    return columns, jsonable(read_rows(query, offset=(page - 1) * size, limit=size))


def purge_results(*, now: datetime) -> dict[str, int]:
    """Delete result files older than ``QUERYGATE_RESULTS_RETENTION_HOURS`` and mark their
    rows (``result_expired_at``, preview dropped). A file shared with a newer cached row
    waits for that row. Also sweeps leftovers: temporary files of crashed writes and files
    no row refers to. Safe to run twice."""
    cutoff = now - retention()
    old = Query.objects.filter(finished_at__lt=cutoff, result_expired_at__isnull=True).exclude(
        result_file=""
    )
    names = set(old.values_list("result_file", flat=True))
    names -= set(
        Query.objects.filter(result_file__in=names, finished_at__gte=cutoff).values_list(
            "result_file", flat=True
        )
    )
    exports = set(  # an export file is its query's own, never shared (never cached)
        old.filter(result_file__in=names)
        .exclude(export_file="")
        .values_list("export_file", flat=True)
    )
    directory = results_dir()
    for name in names | exports:
        (directory / name).unlink(missing_ok=True)
    with transaction.atomic():
        expired = Query.objects.filter(
            result_file__in=names, result_expired_at__isnull=True
        ).update(result_expired_at=now, result=None)
    swept = _sweep(directory, now=now, cutoff=cutoff)
    analyses = _purge_analyses(now)
    if names or swept:
        log.info("query.results_purged files=%s rows=%s swept=%s", len(names), expired, swept)
    return {"files": len(names), "rows": expired, "swept": swept, "analyses": analyses}


def _purge_analyses(now: datetime) -> int:
    """``AnalyzeAudit`` rows (one per pause in the editor's typing) are kept
    ``QUERYGATE_ANALYZE_AUDIT_RETENTION_DAYS``; submissions (``Query``) are kept for good."""
    days = float(getattr(settings, "QUERYGATE_ANALYZE_AUDIT_RETENTION_DAYS", 30.0))
    deleted, _ = AnalyzeAudit.objects.filter(created_at__lt=now - timedelta(days=days)).delete()
    return int(deleted)


def _sweep(directory: Path, *, now: datetime, cutoff: datetime) -> int:
    if not directory.is_dir():
        return 0
    kept = Query.objects.filter(result_expired_at__isnull=True)
    live = set(kept.exclude(result_file="").values_list("result_file", flat=True))
    live |= set(kept.exclude(export_file="").values_list("export_file", flat=True))
    swept = 0
    for path in directory.iterdir():
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
        temporary = path.name.startswith(".") and modified < now - _STALE_TEMP
        orphan = path.suffix == ".parquet" and path.name not in live and modified < cutoff
        if path.is_file() and (temporary or orphan):
            path.unlink(missing_ok=True)
            swept += 1
    return swept
