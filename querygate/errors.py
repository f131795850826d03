"""The query gate's exceptions: one hierarchy, rooted in portal's ``KarimasuError`` so the API
turns any of them into the one JSON error shape."""

from __future__ import annotations

from portal.errors import Conflict, InvalidRequest, KarimasuError, NotPermitted


class QueryGateError(KarimasuError):
    """Anything the gate refuses or fails at."""


class SqlError(QueryGateError, InvalidRequest):
    """The SQL does not parse or does not match the catalog; ``details`` has line/column."""

    code = "sql_error"


class QueryRejected(QueryGateError, InvalidRequest):
    """The policy refused the query; ``details`` has the query id, reasons and findings."""

    code = "query_rejected"


class AcknowledgementRequired(QueryGateError, Conflict):
    """The decision is *warn*: resend with ``acknowledge_warnings: true`` to run it."""

    code = "acknowledgement_required"


class BudgetExceeded(QueryGateError, Conflict):
    """A daily bytes budget or the concurrent-query limit is used up."""

    code = "budget_exceeded"


class ResultsExpired(QueryGateError):
    """The query's result file was deleted after the retention (or is missing)."""

    status = 410
    code = "results_expired"


class InvalidPolicy(QueryGateError, InvalidRequest):
    """A warehouse's or grant's policy overrides do not make a valid Policy."""

    code = "invalid_policy"


class WarehouseDenied(QueryGateError, NotPermitted):
    code = "warehouse_denied"


class EngineError(Exception):
    """The engine failed to run something (connection, SQL error at the engine)."""


class QueryInterrupted(EngineError):
    """The running statement was cancelled on the engine (interrupt, cancel, timeout)."""
