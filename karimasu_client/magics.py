"""IPython magics for notebooks (``pip install 'karimasu[notebook]'``: IPython and pandas)::

    %load_ext karimasu_client.magics        # KARIMASU_URL / KARIMASU_TOKEN from the env
    %karimasu http://127.0.0.1:8000 kms_... # or connect explicitly

    %%sql --warehouse demo
    SELECT n_name, count(*) FROM nation GROUP BY n_name

    %gpu list                                # your bookings
    %gpu borrow --team vision --gpus 1 --hours 2 --purpose "debugging"
    %gpu release 42

``%%sql`` runs the cell through the query gate: the gate's findings are shown inline (a
warned query runs only with ``--ack``; a refused one shows why and returns nothing), the
query's status is shown while it is queued or running, and the rows come back as a pandas
DataFrame, streamed as Arrow: every row the warehouse's export cap allows, not only the
row cap (the query runs with ``export``); it is the cell's value, and ``--out NAME`` also
stores it in that variable. The warehouse defaults to ``KARIMASU_WAREHOUSE``. Every call
goes through the API with the user's token.
"""

from __future__ import annotations

import argparse
import html
import importlib
import shlex
import time
from typing import Any

from karimasu_client import ApiError, Karimasu, NeedsAcknowledgement, QueryFailed, QueryRejected

try:
    from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

    _ipy_display: Any = importlib.import_module("IPython.display")  # untyped: used as Any
except ImportError as error:  # pragma: no cover - the extra is missing
    raise ImportError(
        "the notebook magics need IPython: pip install 'karimasu[notebook]'"
    ) from error


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # no SystemExit inside a kernel
        raise ValueError(f"{self.prog}: {message}")


def _sql_parser() -> _Parser:
    parser = _Parser(prog="%%sql", add_help=False)
    parser.add_argument("--warehouse", "-w", default="")
    parser.add_argument("--ack", action="store_true", help="run a warned query")
    parser.add_argument("--justification", default="", help="ask for an override")
    parser.add_argument("--team", default=None)
    parser.add_argument("--out", default="", help="also store the DataFrame in this variable")
    parser.add_argument("--wait", type=float, default=600.0)
    return parser


def _gpu_parser() -> _Parser:
    parser = _Parser(prog="%gpu", add_help=False)
    parser.add_argument("action", choices=["list", "borrow", "release"])
    parser.add_argument("id", nargs="?", type=int)
    parser.add_argument("--team", default=None)
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--purpose", default="")
    return parser


def HTML(text: str) -> Any:
    return _ipy_display.HTML(text)


def display(obj: Any, **options: Any) -> Any:
    return _ipy_display.display(obj, **options)


def _findings_html(findings: list[dict[str, Any]], title: str) -> str:
    from karimasu_client import _table_html

    rows = [
        [
            f.get("severity"),
            f.get("rule"),
            f"{f.get('line')}:{f.get('column')}",
            f.get("message"),
            f.get("suggestion", ""),
        ]
        for f in findings
    ]
    return f"<p><b>{title}</b></p>" + _table_html(
        ["severity", "rule", "at", "message", "suggestion"], rows
    )


@magics_class
class KarimasuMagics(Magics):
    """``%karimasu``, ``%%sql`` and ``%gpu``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._client: Karimasu | None = None

    @property
    def client(self) -> Karimasu:
        if self._client is None:
            self._client = Karimasu()  # KARIMASU_URL / KARIMASU_TOKEN
        return self._client

    @line_magic
    def karimasu(self, line: str) -> None:
        """``%karimasu URL TOKEN``: connect to a server (else the environment is used)."""
        parts = shlex.split(line)
        if len(parts) != 2:
            raise ValueError("usage: %karimasu URL TOKEN")
        self._client = Karimasu(parts[0], parts[1])

    @cell_magic
    def sql(self, line: str, cell: str) -> Any:
        """Run the cell through the gate; the rows as a pandas DataFrame."""
        import os

        options = _sql_parser().parse_args(shlex.split(line))
        warehouse = options.warehouse or os.environ.get("KARIMASU_WAREHOUSE", "")
        if not warehouse:
            raise ValueError("%%sql needs --warehouse NAME (or KARIMASU_WAREHOUSE)")
        progress = display(HTML("<p>submitting…</p>"), display_id=True)
        started = time.monotonic()

        def show(query: dict[str, Any]) -> None:
            if progress is not None:
                elapsed = time.monotonic() - started
                progress.update(
                    HTML(f"<p>query {query['id']}: {query['status']} ({elapsed:.0f} s)</p>")
                )

        try:
            result = self.client.sql(
                cell,
                warehouse=warehouse,
                acknowledge=options.ack,
                justification=options.justification,
                team=options.team,
                wait=options.wait,
                progress=show,
            )
        except NeedsAcknowledgement as error:
            display(HTML(_findings_html(error.findings, "warned: run again with --ack")))
            return None
        except QueryRejected as error:
            display(HTML(_findings_html(error.findings, f"refused: {error.message}")))
            return None
        except (QueryFailed, ApiError) as error:
            display(HTML(f"<p><b>{type(error).__name__}</b>: {error}</p>"))
            return None
        findings = (result.query.get("analysis") or {}).get("findings") or []
        if findings:
            display(HTML(_findings_html(findings, "findings")))
        if progress is not None:
            whole = "" if result.complete else " (cut: see query's download message)"
            progress.update(
                HTML(
                    f"<p>query {result.id}: {result.query['status']}, downloading "
                    f"{result.download_rows:,} rows{whole}…</p>"
                )
            )
        frame = result.to_pandas()
        if progress is not None:
            note = (
                ""
                if result.complete
                else f": {(result.query.get('download') or {}).get('message', '')}"
            )
            progress.update(
                HTML(
                    f"<p>query {result.id}: {result.query['status']}, {len(frame):,} rows"
                    f"{html.escape(note)}</p>"
                )
            )
        if options.out and self.shell is not None:
            self.shell.user_ns[options.out] = frame
        return frame

    @line_magic
    def gpu(self, line: str) -> Any:
        """``%gpu list | borrow --team T --gpus N --hours H [--purpose P] | release ID``."""
        options = _gpu_parser().parse_args(shlex.split(line))
        bookings = self.client.bookings
        if options.action == "list":
            rows = bookings.list(mine="true")
            try:
                pandas = importlib.import_module("pandas")
            except ImportError:
                return rows
            return pandas.DataFrame(rows)
        if options.action == "borrow":
            fields: dict[str, Any] = {
                "gpus": options.gpus,
                "hours": options.hours,
                "purpose": options.purpose,
            }
            if options.team:
                fields["team"] = options.team
            if options.model:
                fields["model"] = options.model
            return bookings.borrow(**fields)
        if options.id is None:
            raise ValueError("usage: %gpu release ID")
        return bookings.release(options.id)


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(KarimasuMagics)
