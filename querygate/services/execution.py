"""Execution: a queued query is claimed by one executor and run on the engine under its
runtime budget, watched for cancels and deadlines; its result is stored (Parquet) or its
failure recorded. Only ``lifecycle.move`` changes its status."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from querygate.engines import Engine, Session
from querygate.engines.base import ResultSet, value_size
from querygate.engines.export import batch_rows_for
from querygate.errors import EngineError, QueryInterrupted, SqlError
from querygate.messages import (
    ENGINE_INTERRUPTED,
    ENGINE_REFUSED,
    INTERNAL_ERROR,
    RESULT_CUT,
    RESULT_NOT_STORED,
    SQL_NOT_RUNNABLE,
    stored_error,
)
from querygate.models import ACTIVE_STATUSES, Query, QueryStatus
from querygate.overrides import export_limits
from querygate.services import results
from querygate.services.enforcement import request_kill
from querygate.services.lifecycle import move
from querygate.services.warehouses import engine_of, engine_statement

log = logging.getLogger("karimasu.querygate")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def enqueue(query_id: int) -> None:
    from querygate import tasks

    transaction.on_commit(lambda: tasks.run_query.delay(query_id))


def limited_sql(query: Query, dialect: str) -> str:
    """The statement the engine runs: the one the gate judged, rendered by sqlglot from the
    analysis's tree at submission (``Query.engine_sql``); a SELECT returns at most
    ``row_cap + 1`` rows (LIMIT added or lowered; the +1 detects truncation), so the engine
    stops early. A row written before ``engine_sql`` existed is re-read here
    (``engine_statement``: ``SqlError`` unless exactly one statement parses)."""
    if query.engine_sql:
        return query.engine_sql
    cap = query.warehouse.row_cap + 1 if query.statement_type == "select" else None
    return engine_statement(query.sql, dialect, cap=cap)


def execute_query(
    query_id: int, *, engine: Engine | None = None, inline: bool = False, poll_s: float = 0.2
) -> Query:
    """Claim a queued query and run it on the engine; safe to call twice (the second call
    finds it claimed and returns it). Inline runs get ``QUERYGATE_INLINE_SECONDS``; one that
    passes it is stopped on the engine and handed to Celery with its full budget."""
    now = timezone.now()
    query = Query.objects.select_related("warehouse").get(pk=query_id)
    budget = query.runtime_budget_s or query.warehouse.max_runtime_s
    timeout = min(budget, _setting("QUERYGATE_INLINE_SECONDS", 5.0)) if inline else budget
    claimed = move(
        query_id,
        QueryStatus.QUEUED,
        QueryStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        deadline=now + timedelta(seconds=budget),
        mode="inline" if inline else "celery",
    )
    if claimed != 1:
        return query  # run by another delivery, cancelled, or lost: never run late
    try:
        return _run_claimed(query, engine, timeout, inline, poll_s)
    except Exception as error:  # nothing may leave a query "running" with no executor
        log.exception("query.executor_failed id=%s", query_id)
        return _finish(
            query_id,
            QueryStatus.FAILED,
            error={**stored_error(INTERNAL_ERROR, kind=type(error).__name__), "kind": "internal"},
        )


def _run_claimed(
    query: Query, engine: Engine | None, timeout: float, inline: bool, poll_s: float
) -> Query:
    query_id = query.pk
    warehouse = query.warehouse
    engine = engine or engine_of(warehouse)
    try:
        sql = limited_sql(query, warehouse.sql_dialect)
    except SqlError as error:
        cause = error.__cause__ or error
        error_ = stored_error(SQL_NOT_RUNNABLE, error=cause)
        return _finish(query_id, QueryStatus.FAILED, error=error_)
    session: Session | None = None
    end = time.monotonic() + timeout
    try:
        with engine.session(
            timeout_s=timeout, allow_writes=query.statement_type != "select"
        ) as session:
            Query.objects.filter(pk=query_id).update(engine_handle=session.handle)
            watcher = _Watcher(query_id, session, poll_s)
            watcher.start()
            try:
                result = session.execute(sql, max_rows=warehouse.row_cap)
                cut_by = session.cut_by
                export = _export(query, session, result, end=end)
            finally:
                watcher.stop()
    except QueryInterrupted as error:
        return _interrupted(query_id, str(error), inline=inline)
    except EngineError as error:
        return _finish(
            query_id, QueryStatus.FAILED, error=stored_error(ENGINE_REFUSED, error=error)
        )
    finally:
        if session is not None and session.temp_bytes:  # spill counts, whatever the outcome
            Query.objects.filter(pk=query_id).update(temp_bytes=session.temp_bytes)
    return _store(query_id, result, cut_by=cut_by, export=export)


def _export(query: Query, session: Session, result: ResultSet, *, end: float) -> dict[str, Any]:
    """The full export of a query that asked for one (``export_requested``), run in the
    query's session under what is left of its runtime budget (``end``, a monotonic time)
    and its watcher (a cancel or the deadline interrupts it: ``QueryInterrupted``, the
    query is killed, no file is left). Needed only when the capped run was cut; a result
    within the cap is whole already (its file is the download). Returns the fields to
    store: ``export`` (and ``export_file`` once the file is whole and in place)."""
    if not query.export_requested or query.statement_type != "select" or not result.truncated:
        return {}
    warehouse = query.warehouse
    limits = export_limits(warehouse.policy or {})
    caps = {"max_rows": limits.rows, "max_bytes": limits.bytes}
    if not limits.enabled:
        return {"export": {"status": "disabled", **caps}}
    directory = results.results_dir()
    name = results.export_file_name(query.pk)
    partial = directory / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        statement = engine_statement(query.sql, warehouse.sql_dialect, cap=limits.rows + 1)
        stats = session.export(
            statement,
            path=str(partial),
            max_rows=limits.rows,
            max_bytes=limits.bytes,
            timeout_s=max(0.1, end - time.monotonic()),
            batch_rows=batch_rows_for(_row_bytes(result)),
        )
        if stats.cut_by:
            partial.unlink(missing_ok=True)
            return {"export": {"status": "over_cap", "cut_by": stats.cut_by, **caps}}
        os.replace(partial, directory / name)
    except QueryInterrupted:
        raise  # cancelled or out of time: the query is stopped (its files go)
    except (EngineError, SqlError, OSError) as error:
        # The preview stands: the query succeeds, its download is the capped result.
        partial.unlink(missing_ok=True)
        log.warning("query.export_failed id=%s %s", query.pk, error)
        return {"export": {"status": "failed", "message": str(error), **caps}}
    finally:
        partial.unlink(missing_ok=True)  # interrupted: never a partial file left behind
    export = {"status": "complete", "rows": stats.rows, "bytes": stats.bytes, **caps}
    log.info("query.exported id=%s rows=%s bytes=%s", query.pk, stats.rows, stats.bytes)
    return {"export": export, "export_file": name}


def _without_bytes(result: ResultSet) -> ResultSet:
    """Binary values (BLOB, bytea) as text ``\\x`` + hex, their columns typed VARCHAR: the
    preview is JSON and the result file is written through JSON lines."""
    binary = {
        i
        for row in result.rows
        for i, value in enumerate(row)
        if isinstance(value, bytes | bytearray | memoryview)
    }
    if not binary:
        return result

    def text(value: Any) -> Any:
        if isinstance(value, bytes | bytearray | memoryview):
            return "\\x" + bytes(value).hex()
        return value

    rows = [tuple(text(v) if i in binary else v for i, v in enumerate(r)) for r in result.rows]
    types = tuple("VARCHAR" if i in binary else t for i, t in enumerate(result.types))
    return ResultSet(result.columns, rows, result.truncated, types)


def _row_bytes(result: ResultSet) -> float:
    """The average size of a row of ``result`` (``value_size``; its first 1,000 rows)."""
    sample = result.rows[:1000]
    return sum(value_size(v) for row in sample for v in row) / max(1, len(sample))


def _store(
    query_id: int, result: ResultSet, *, cut_by: str = "", export: dict[str, Any] | None = None
) -> Query:
    """Write the result's Parquet file, then mark the query succeeded with a preview of the
    first rows. A failed write fails the query (its audit row stays, with the reason) and
    leaves no file; a file whose query was killed meanwhile is removed. A result cut at the
    byte limit says so in ``error`` (``kind: result_truncated``) while it succeeds."""
    result = _without_bytes(result)
    size: dict[str, Any] = {"row_count": len(result.rows), "truncated": result.truncated}
    if cut_by == "bytes":
        size["error"] = {
            "kind": "result_truncated",
            **stored_error(
                RESULT_CUT,
                rows=f"{len(result.rows):,}",
                limit=int(_setting("QUERYGATE_MAX_RESULT_MB", 32)),
            ),
        }
    preview: dict[str, Any] = {"columns": result.columns, "rows": [list(r) for r in result.rows]}
    name = ""
    if result.columns:
        try:
            name = results.write_result(query_id, result)
        except results.ResultStorageError as error:
            if export and export.get("export_file"):
                (results.results_dir() / export["export_file"]).unlink(missing_ok=True)
            return _finish(
                query_id,
                QueryStatus.FAILED,
                error={**stored_error(RESULT_NOT_STORED, error=error), "kind": "result_storage"},
                **size,
            )
        preview["rows"] = preview["rows"][: results.PREVIEW_ROWS]
    export = export or {}
    query = _finish(
        query_id, QueryStatus.SUCCEEDED, result=preview, result_file=name, **size, **export
    )
    for file, stored in ((name, query.result_file), (export.get("export_file"), query.export_file)):
        if file and stored != file:  # killed meanwhile: its files go
            (results.results_dir() / file).unlink(missing_ok=True)
    return query


def _interrupted(query_id: int, message: str, *, inline: bool) -> Query:
    query = Query.objects.get(pk=query_id)
    if query.cancel_requested_at is None and inline and "timeout" in message.lower():
        # Not cancelled: the inline budget ran out. Hand it to a worker with its full budget.
        updated = move(
            query_id,
            QueryStatus.RUNNING,
            QueryStatus.QUEUED,
            mode="celery",
            started_at=None,
            deadline=None,
            engine_handle={},
        )
        if updated:
            enqueue(query_id)
        return Query.objects.get(pk=query_id)
    if query.cancel_requested_at is not None and query.killed_by_id == query.user_id:
        status = QueryStatus.CANCELLED
    else:
        status = QueryStatus.KILLED
    reason = query.kill_reason or "engine timeout: runtime budget exceeded"
    error = stored_error(ENGINE_INTERRUPTED, error=message)
    return _finish(query_id, status, error=error, kill_reason=reason)


def _finish(query_id: int, status: str, **fields: Any) -> Query:
    move(query_id, QueryStatus.RUNNING, status, finished_at=timezone.now(), **fields)
    query = Query.objects.get(pk=query_id)
    log.info("query.finished id=%s status=%s rows=%s", query_id, query.status, query.row_count)
    return query


_HEARTBEAT_S = 2.0


class _Watcher:
    """Polls the query's row while it runs; on a cancel request or a passed deadline it
    interrupts the session (DuckDB can only be interrupted by the process running it)."""

    def __init__(self, query_id: int, session: Session, poll_s: float) -> None:
        self._query_id = query_id
        self._session = session
        self._poll_s = poll_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"qg-{query_id}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        beat = checked = time.monotonic()
        try:
            while not self._done.wait(min(self._poll_s, _HEARTBEAT_S)):
                now = time.monotonic()
                if now - beat >= _HEARTBEAT_S:
                    beat = now
                    Query.objects.filter(pk=self._query_id, status=QueryStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                if now - checked < self._poll_s:
                    continue
                checked = now
                row = (
                    Query.objects.filter(pk=self._query_id)
                    .values("cancel_requested_at", "deadline", "status")
                    .first()
                )
                if row is None or row["status"] != QueryStatus.RUNNING:
                    return
                if row["cancel_requested_at"] is not None:
                    self._session.interrupt()
                    return
                if row["deadline"] is not None and timezone.now() > row["deadline"]:
                    request_kill(
                        self._query_id,
                        by=None,
                        reason="runtime budget exceeded",
                        now=timezone.now(),
                        signal=False,
                    )
                    self._session.interrupt()
                    return
        except Exception:  # the watcher must never take the worker down
            log.exception("query.watcher_failed id=%s", self._query_id)
        finally:
            connection.close()


def wait_for(query_id: int, *, timeout_s: float) -> Query:
    """Poll until the query leaves queued/running (tests and the CLI)."""
    end = time.monotonic() + timeout_s
    while True:
        query = Query.objects.get(pk=query_id)
        if query.status not in ACTIVE_STATUSES or time.monotonic() > end:
            return query
        close_old_connections()
        time.sleep(0.1)
