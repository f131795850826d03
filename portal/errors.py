"""The root of Karimasu's domain exceptions.

Services raise these; they know nothing of HTTP beyond a suggested status. The API's
exception handler (portal.api.exceptions) turns any of them into the one JSON error shape,
so a service error never becomes a 500. Each app derives its own hierarchy from here
(`QueryGateError`, `SchedulerError`, ...).
"""

from __future__ import annotations

from typing import Any


class KarimasuError(Exception):
    """A refusal the caller can act on. `code` is stable and machine-readable."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details if details is not None else {}


class InvalidRequest(KarimasuError):
    status = 400
    code = "invalid"


class NotPermitted(KarimasuError):
    status = 403
    code = "permission_denied"


class NotFoundError(KarimasuError):
    status = 404
    code = "not_found"


class Conflict(KarimasuError):
    status = 409
    code = "conflict"
