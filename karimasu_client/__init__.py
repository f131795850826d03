"""The notebook client: Karimasu's REST API from Python (Jupyter, scripts)::

    from karimasu_client import Karimasu

    kms = Karimasu("http://127.0.0.1:8000", token="kms_...")  # or KARIMASU_URL / _TOKEN
    kms.analyze("SELECT * FROM lineitem", warehouse="demo")  # findings and estimate
    result = kms.sql("SELECT n_name FROM nation", warehouse="demo")
    result.columns, result.rows[:3]
    df = result.to_pandas()  # every row the export cap allows, streamed as Arrow
    result.download("all.parquet")  # the same rows as a file (or format="csv"/"arrow")
    job = kms.jobs.submit(name="resnet", team="vision", image="pytorch/pytorch:2.4", gpus=2)
    ddp = kms.jobs.submit(name="ddp", team="vision", image="pytorch/pytorch:2.4", gpus=2, nodes=3)
    kms.bookings.borrow(team="vision", gpus=1, hours=2, purpose="debugging")

Every call goes through the API with a personal token (Bearer), so it is subject to the same
rules as the browser: the query gate analyzes, decides and audits each query. A refusal is
raised as an exception that carries the gate's findings; a warned query runs only with
``acknowledge=True``. In Jupyter, analyses and results render as tables.

``sql`` submits with ``export`` (default True): past the warehouse's row cap, the server
keeps the whole result (up to the export cap) for the downloads, and ``to_pandas`` /
``to_arrow`` / ``download`` stream it (``rows`` and ``len()`` stay the stored rows, at most
the row cap; ``download_rows`` and ``complete`` say what the download holds).
``progress=True`` prints the query's status while it runs.

Only ``requests`` is needed; ``to_pandas`` needs pandas (and pyarrow to get more than the
stored rows). In IPython/Jupyter,
``%load_ext karimasu_client.magics`` adds ``%%sql`` and ``%gpu`` (``karimasu_client.magics``;
the ``notebook`` extra installs IPython, pandas and pyarrow).
"""

from __future__ import annotations

import html
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from karimasu_client.pipelines import Pipeline, Pipelines

__all__ = [
    "Analysis",
    "ApiError",
    "Karimasu",
    "NeedsAcknowledgement",
    "Pipeline",
    "QueryFailed",
    "QueryRejected",
    "QueryResult",
]

#: Query statuses that will still change.
ACTIVE = ("queued", "running")


class ApiError(Exception):
    """An error answer of the API: HTTP ``status``, ``code``, ``message`` and ``details``
    (the API's one error shape)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details

    @property
    def findings(self) -> list[dict[str, Any]]:
        """The query gate's findings, when the error carries them."""
        return list(self.details.get("findings") or [])


class QueryRejected(ApiError):
    """The gate refused the query (``query_rejected`` or ``sql_error``); ``findings`` say
    why, ``details["line"]``/``["column"]`` where for a SQL error."""


class NeedsAcknowledgement(ApiError):
    """The gate warns about the query: read ``findings``, then run it with
    ``acknowledge=True``."""


class QueryFailed(Exception):
    """The query ran and did not succeed (failed, cancelled, killed); ``query`` is its record."""

    def __init__(self, query: dict[str, Any]) -> None:
        reason = query.get("kill_reason") or (query.get("error") or {}).get("message") or ""
        super().__init__(f"query {query['id']} {query['status']}: {reason}".rstrip(": "))
        self.query = query


_GATE_ERRORS = {
    "query_rejected": QueryRejected,
    "sql_error": QueryRejected,
    "acknowledgement_required": NeedsAcknowledgement,
}


def _table_html(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Analysis:
    """What the gate says of a query without running it (``POST /api/v1/queries/analyze/``)."""

    report: dict[str, Any]

    @property
    def decision(self) -> str:
        return str(self.report["decision"])

    @property
    def findings(self) -> list[dict[str, Any]]:
        return list(self.report["findings"])

    @property
    def estimate(self) -> dict[str, Any] | None:
        return self.report.get("estimate")

    def __str__(self) -> str:
        lines = [f"decision: {self.decision}"]
        if self.estimate:
            e = self.estimate
            lines.append(
                f"estimate: {e['rows']:,} rows, {e['bytes_scanned']:,} bytes scanned, "
                f"{e['intermediate_rows']:,} intermediate rows"
            )
        for f in self.findings:
            where = f"{f['line']}:{f['column']}"
            lines.append(f"{f['severity']} {f['rule']} at {where}: {f['message']}")
            if f.get("suggestion"):
                lines.append(f"    {f['suggestion']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:  # Jupyter
        rows = [
            [f["severity"], f["rule"], f"{f['line']}:{f['column']}", f["message"], f["suggestion"]]
            for f in self.findings
        ]
        table = _table_html(["severity", "rule", "at", "message", "suggestion"], rows)
        return f"<p><b>{html.escape(self.decision)}</b></p>" + (table if rows else "")


@dataclass
class QueryResult:
    """A finished query: its record (``query``) and all of its rows, fetched page by page
    from ``/api/v1/queries/{id}/results/``."""

    client: Karimasu = field(repr=False)
    query: dict[str, Any]
    columns: list[str]
    rows: list[list[Any]]

    @property
    def id(self) -> int:
        return int(self.query["id"])

    @property
    def truncated(self) -> bool:
        """True when the warehouse's row cap cut the result."""
        return bool(self.query.get("truncated"))

    def records(self) -> Iterator[dict[str, Any]]:
        """The rows as dicts, column name -> value."""
        for row in self.rows:
            yield dict(zip(self.columns, row, strict=True))

    @property
    def download_rows(self) -> int:
        """How many rows ``to_pandas``, ``to_arrow`` and ``download`` give: every row of
        the result when the server kept a full export (the query ran with ``export``),
        else the stored rows (at most the row cap)."""
        return int((self.query.get("download") or {}).get("rows", len(self.rows)))

    @property
    def complete(self) -> bool:
        """True when the downloads hold every row of the result (not cut at a cap); the
        reason otherwise is in ``query["download"]["message"]``."""
        info = self.query.get("download") or {}
        return bool(info.get("complete", not self.truncated))

    def to_arrow(self) -> Any:
        """The whole download as a ``pyarrow.Table``, streamed from the server as Arrow
        record batches (``?download=arrow``): every row the warehouse's export policy
        allows, never the row cap alone. Needs pyarrow."""
        try:
            ipc = importlib.import_module("pyarrow.ipc")
        except ImportError as error:
            raise ImportError("to_arrow needs pyarrow: pip install pyarrow") from error
        response = self.client.request(
            "GET",
            f"/api/v1/queries/{self.id}/results/",
            params={"download": "arrow"},
            raw=True,
            stream=True,
        )
        try:
            response.raw.decode_content = True
            return ipc.open_stream(response.raw).read_all()
        finally:
            response.close()

    def to_pandas(self) -> Any:
        """The result as a pandas DataFrame (needs pandas): with pyarrow, the whole download
        streamed as Arrow (``to_arrow``: every row the export allows); without it, the
        stored rows (``rows``, at most the row cap)."""
        try:
            pandas = importlib.import_module("pandas")  # optional: only this method needs it
        except ImportError as error:
            raise ImportError("to_pandas needs pandas: pip install pandas") from error
        try:
            importlib.import_module("pyarrow")
        except ImportError:
            return pandas.DataFrame(self.rows, columns=self.columns)
        return self.to_arrow().to_pandas()

    def download(self, path: str, *, format: str = "parquet") -> str:
        """Save the whole download as ``parquet``, ``csv`` or ``arrow`` (an Arrow IPC
        stream) to ``path``, streamed to disk; returns ``path``."""
        response = self.client.request(
            "GET",
            f"/api/v1/queries/{self.id}/results/",
            params={"download": format},
            raw=True,
            stream=True,
        )
        try:
            with open(path, "wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    out.write(chunk)
        finally:
            response.close()
        return path

    def __len__(self) -> int:
        return len(self.rows)

    def _repr_html_(self) -> str:  # Jupyter: the first 50 rows
        note = f"<p>{len(self.rows):,} rows{' (cut at the row cap)' if self.truncated else ''}</p>"
        return note + _table_html(self.columns, self.rows[:50])


def _print_progress(query: dict[str, Any]) -> None:
    """A one-line status of a running query on stderr (``sql(progress=True)``)."""
    elapsed = query.get("elapsed_s", 0.0)
    sys.stderr.write(f"\rquery {query['id']}: {query['status']} ({elapsed:.0f} s)   ")
    sys.stderr.flush()


class _Resource:
    def __init__(self, client: Karimasu, path: str) -> None:
        self.client, self.path = client, path

    def list(self, **filters: Any) -> list[dict[str, Any]]:
        """The first page of the list, filtered by the API's query parameters."""
        page = self.client.request("GET", self.path, params=filters)
        return list(page["results"]) if isinstance(page, dict) and "results" in page else page

    def get(self, id: int) -> dict[str, Any]:
        return self.client.call("GET", f"{self.path}{id}/")


class _Cancellable(_Resource):
    def cancel(self, id: int) -> dict[str, Any]:
        """Cancel it (``POST .../{id}/cancel/``); the updated record."""
        return self.client.call("POST", f"{self.path}{id}/cancel/", json={})


class _Jobs(_Cancellable):
    def submit(self, **fields: Any) -> dict[str, Any]:
        """Submit a training job (fields as in ``POST /api/v1/jobs/``: name, team, image,
        gpus (per node), nodes (more than 1: a multi-node job, all nodes or none), command,
        max_runtime_s, priority...)."""
        return self.client.call("POST", self.path, json=fields)

    def logs(self, id: int, *, tail: int = 500) -> str:
        """The last ``tail`` lines of the job's log (plain text)."""
        response = self.client.request(
            "GET", f"{self.path}{id}/logs/", params={"tail": tail}, raw=True
        )
        return str(response.text)


class _Bookings(_Resource):
    def borrow(self, **fields: Any) -> dict[str, Any]:
        """Book GPUs from now (fields as in ``POST /api/v1/reservations/borrow/``: team,
        gpus, hours, model, purpose)."""
        return self.client.call("POST", f"{self.path}borrow/", json=fields)

    def release(self, id: int) -> dict[str, Any]:
        """Give a booking's GPUs back now."""
        return self.client.call("POST", f"{self.path}{id}/release/", json={})

    def cancel(self, id: int) -> None:
        """End a booking: cancelled before it starts, released once it has."""
        self.client.request("DELETE", f"{self.path}{id}/")


class _Sessions(_Resource):
    def start(self, **fields: Any) -> dict[str, Any]:
        """Start a workspace (fields as in ``POST /api/v1/sessions/``: image, and either
        reservation (a booking you hold) or team, gpus, gpu_model, hours: on demand, queued
        like a job). Open it in the browser at ``url``."""
        return self.client.call("POST", self.path, json=fields)

    def stop(self, id: int) -> dict[str, Any]:
        """Stop the workspace now."""
        return self.client.call("POST", f"{self.path}{id}/stop/", json={})

    def extend(self, id: int, minutes: int = 30) -> dict[str, Any]:
        """Run it ``minutes`` longer, if the limits allow."""
        return self.client.call("POST", f"{self.path}{id}/extend/", json={"minutes": minutes})


class Karimasu:
    """A session with one Karimasu server. ``url`` and ``token`` default to the environment
    variables ``KARIMASU_URL`` and ``KARIMASU_TOKEN`` (make a token on the portal's
    *API tokens* page)."""

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = 60.0
    ) -> None:
        url = url or os.environ.get("KARIMASU_URL", "")
        token = token or os.environ.get("KARIMASU_TOKEN", "")
        if not url or not token:
            raise ValueError("Give url= and token= (or set KARIMASU_URL and KARIMASU_TOKEN).")
        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        self.jobs = _Jobs(self, "/api/v1/jobs/")
        self.bookings = _Bookings(self, "/api/v1/reservations/")
        self.sessions = _Sessions(self, "/api/v1/sessions/")
        self.queries = _Cancellable(self, "/api/v1/queries/")
        self.pipelines = Pipelines(self)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        raw: bool = False,
        stream: bool = False,
    ) -> Any:
        """One API call; the decoded JSON (the response itself with ``raw``; its body not
        yet read with ``stream``). An error answer raises ``ApiError`` (or the query gate's
        subclasses)."""
        response = self.session.request(
            method, self.url + path, params=params, json=json, timeout=self.timeout, stream=stream
        )
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text[:500]}
            kind = _GATE_ERRORS.get(error.get("code", ""), ApiError)
            raise kind(
                response.status_code,
                str(error.get("code", "")),
                str(error.get("message", "")),
                dict(error.get("details") or {}),
            )
        if raw:
            return response
        return response.json() if response.content else None

    def call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        """``request`` for an endpoint that answers one JSON object."""
        answer = self.request(method, path, **options)
        if not isinstance(answer, dict):
            raise ApiError(200, "unexpected_answer", f"{path} did not answer an object", {})
        return answer

    def me(self) -> dict[str, Any]:
        """Who the token belongs to, and their teams."""
        return self.call("GET", "/api/v1/me/")

    def warehouses(self) -> list[dict[str, Any]]:
        """The warehouses this user may query."""
        return _Resource(self, "/api/v1/warehouses/").list()

    def analyze(self, sql: str, *, warehouse: str, explain: bool = False) -> Analysis:
        """The gate's findings and estimate for ``sql``, without running it."""
        report = self.call(
            "POST",
            "/api/v1/queries/analyze/",
            json={"warehouse": warehouse, "sql": sql, "explain": explain},
        )
        return Analysis(report)

    def sql(
        self,
        sql: str,
        *,
        warehouse: str,
        acknowledge: bool = False,
        justification: str = "",
        team: str | None = None,
        wait: float = 600.0,
        poll: float = 1.0,
        progress: Callable[[dict[str, Any]], None] | bool | None = None,
        export: bool = True,
    ) -> QueryResult:
        """Run ``sql`` through the gate and return its rows. With ``export`` (the default)
        the server keeps every row the warehouse's export cap allows for ``to_pandas``,
        ``to_arrow`` and ``download`` (``rows`` stay the stored ones, at most the row cap).
        Raises ``QueryRejected``,
        ``NeedsAcknowledgement`` (run again with ``acknowledge=True``), ``QueryFailed``, or
        ``TimeoutError`` after ``wait`` seconds (the query keeps running: ``cancel`` it or
        fetch it later with ``result(id)``). ``justification`` asks for a lead's or admin's
        override of a rejection. ``progress`` is called with the query's record at each
        poll while it is queued or running (the notebook magic shows its status);
        ``progress=True`` prints a status line to stderr instead."""
        body: dict[str, Any] = {"warehouse": warehouse, "sql": sql, "export": export}
        if progress is True:
            progress = _print_progress
        elif progress is False:
            progress = None
        if acknowledge:
            body["acknowledge_warnings"] = True
        if justification:
            body["override_justification"] = justification
        if team:
            body["team"] = team
        query = self.call("POST", "/api/v1/queries/", json=body)
        deadline = time.monotonic() + wait
        started = time.monotonic()
        while query["status"] in ACTIVE:
            query["elapsed_s"] = time.monotonic() - started
            if progress is not None:
                progress(query)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"query {query['id']} is still {query['status']}")
            time.sleep(poll)
            query = self.queries.get(query["id"])
        return self.result(query["id"], query=query)

    def result(self, query_id: int, *, query: dict[str, Any] | None = None) -> QueryResult:
        """The rows of a finished query (all pages)."""
        query = query or self.queries.get(query_id)
        if query["status"] != "succeeded":
            raise QueryFailed(query)
        columns: list[str] = []
        rows: list[list[Any]] = []
        page = 1
        while True:
            answer = self.call(
                "GET",
                f"/api/v1/queries/{query_id}/results/",
                params={"page": page, "page_size": 5000},
            )
            columns = answer["columns"]
            rows += answer["rows"]
            if not answer["rows"] or len(rows) >= answer["row_count"]:
                break
            page += 1
        return QueryResult(self, query, columns, rows)

    def cancel(self, query_id: int) -> dict[str, Any]:
        """Cancel a queued or running query of yours (admins: anyone's)."""
        return self.queries.cancel(query_id)
