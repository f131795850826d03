"""API errors, rendered as ``Status`` objects exactly as the real API server shapes them.

Every failure the emulator reports is an :class:`ApiError`; the HTTP layer turns it into a
JSON ``Status`` (``kind: Status``, ``status: Failure``, ``reason``, ``code``, ``details``) with
the same HTTP status code, which the official client raises as ``ApiException``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldCause:
    """One reason an object is invalid (``details.causes[]`` of a 422)."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"  # FieldValueRequired, FieldValueNotSupported, ...


@dataclass
class ApiError(Exception):
    """An error answered to an API call.

    ``qualified`` is the resource as the server names it in messages: ``pods`` or ``jobs.batch``.
    """

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        """The ``Status`` object for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(resource: str, group: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return details


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    """404: ``pods "x" not found``."""
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        _details(resource, group, name),
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    """409 AlreadyExists: ``jobs.batch "x" already exists``."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        _details(resource, group, name),
    )


def conflict(resource: str, group: str, name: str) -> ApiError:
    """409 Conflict: a write carried a stale ``metadata.resourceVersion``."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": the object '
        "has been modified; please apply your changes to the latest version and try again",
        _details(resource, group, name),
    )


def invalid(kind: str, group: str, name: str, causes: list[FieldCause]) -> ApiError:
    """422 Invalid, with one cause per bad field (``Job.batch "x" is invalid: ...``)."""
    summary = "; ".join(f"{c.field}: {c.message}" for c in causes)
    qualified = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
    }
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details)


def expired(requested: int, oldest: int) -> ApiError:
    """410 Expired: a watch asked for history the server no longer keeps."""
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def bad_request(message: str) -> ApiError:
    """400 BadRequest (unparsable selector, body or parameter)."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed(method: str) -> ApiError:
    """405 MethodNotAllowed for a verb a resource does not support."""
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method})",
    )


def unknown_path() -> ApiError:
    """404 for a path that names no resource."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def unsupported_media_type(accepted: tuple[str, ...]) -> ApiError:
    """415 for a body in a format the emulator does not read (protobuf, CBOR, ...)."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def not_acceptable(accepted: tuple[str, ...]) -> ApiError:
    """406 for an ``Accept`` header the emulator cannot answer (protobuf only, ...)."""
    return ApiError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: {', '.join(accepted)}",
    )
