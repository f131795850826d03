"""One JSON error shape for every API failure.

    {"error": {"code": "not_found", "message": "Team not found.", "details": {}}}

`code` is stable and machine-readable, `message` is for people, `details` carries field
errors (validation), positions (malformed JSON) or context (the conflicting rows of a 409).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, OperationalError
from django.http import Http404, JsonResponse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, status
from rest_framework.response import Response

from portal.accounts.language import request_language
from portal.errors import KarimasuError

log = logging.getLogger("karimasu.api")

_DJANGO_404 = re.compile(r"^No \w+ matches the given query\.$")

# The code used when a response carries no more specific one.
DEFAULT_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}

DEFAULT_MESSAGES = {
    400: gettext_lazy("Bad request."),
    401: gettext_lazy("Authentication credentials were not provided."),
    403: gettext_lazy("You do not have permission to perform this action."),
    404: gettext_lazy("Not found."),
    405: gettext_lazy("Method not allowed."),
    409: gettext_lazy("Conflict."),
    413: gettext_lazy("Request body too large."),
    415: gettext_lazy("Unsupported media type."),
    429: gettext_lazy("Too many requests."),
    500: gettext_lazy("Internal server error."),
    503: gettext_lazy("Service unavailable."),
}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = gettext_lazy("Request body too large.")


class MalformedYAML(exceptions.ParseError):
    """A ParseError that says where the YAML broke."""

    default_code = "malformed_yaml"

    def __init__(self, detail: str, *, line: int, column: int) -> None:
        super().__init__(detail)
        self.details = {"line": line, "column": column}


class MalformedJSON(exceptions.ParseError):
    """A ParseError that says where the JSON broke."""

    default_code = "malformed_json"

    def __init__(self, detail: str, *, line: int, column: int) -> None:
        super().__init__(detail)
        self.details = {"line": line, "column": column}


def error_body(
    status_code: int, code: str | None = None, message: str | None = None, details: Any = None
) -> dict[str, Any]:
    return {
        "error": {
            "code": code or DEFAULT_CODES.get(status_code, "error"),
            "message": str(message or DEFAULT_MESSAGES.get(status_code, _("Error."))),
            "details": details if details is not None else {},
        }
    }


def error_response(
    status_code: int, code: str | None = None, message: str | None = None, details: Any = None
) -> JsonResponse:
    """The shape for places outside DRF (middleware, Django's handlers)."""
    return JsonResponse(error_body(status_code, code, message, details), status=status_code)


def _first_message(detail: Any) -> str:
    """The first human message in a DRF detail tree, prefixed by its field path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def _codes(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return "invalid"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception becomes the JSON shape, never HTML."""
    if isinstance(exc, Http404):
        # Django's own "No Query matches the given query." (get_object_or_404) is English
        # only: the generic message in the reader's language instead.
        message = str(exc)
        exc = exceptions.NotFound(None if _DJANGO_404.match(message) else message or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    if isinstance(exc, KarimasuError):
        return Response(
            error_body(exc.status, exc.code, exc.message, exc.details), status=exc.status
        )

    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        from portal.api.throttling import throttle_failed_credentials

        request = context.get("request")
        wait = throttle_failed_credentials(request) if request is not None else None
        if wait is not None:
            exc = exceptions.Throttled(wait=wait)

    if isinstance(exc, exceptions.APIException):
        request = context.get("request")
        if request is not None and not getattr(request, "_user", None):
            # Raised before DRF authenticated (content negotiation, a parse error): a
            # token's user was not known, so neither was their language.
            translation.activate(request_language(request._request))
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, exceptions.ValidationError):
            body = error_body(exc.status_code, "invalid", _first_message(exc.detail), exc.detail)
        else:
            details = getattr(exc, "details", None)
            message = _first_message(exc.detail)
            if isinstance(exc, exceptions.Throttled):
                details = {"retry_after_seconds": int(exc.wait) if exc.wait else None}
                # DRF's "Expected available in N seconds." has no Japanese in its catalog.
                wait = getattr(exc, "wait", None)
                message = (
                    _("Too many requests: try again in %(seconds)s seconds.")
                    % {"seconds": int(wait)}
                    if wait
                    else _("Too many requests.")
                )
            elif isinstance(exc.detail, str) and getattr(exc, "default_detail", None):
                with translation.override("en"):
                    english = str(exc.default_detail)
                if str(exc.detail) == english:
                    message = str(exc.default_detail)  # lazy: in the language now active
            body = error_body(exc.status_code, _codes(exc), message, details)
        return Response(body, status=exc.status_code, headers=headers)

    view = context.get("view")
    if isinstance(exc, DataError | OverflowError):
        # A value the database cannot hold (an integer past its range, a NUL character): the
        # input's fault. Views validate what they know; this is the net under them.
        log.warning("api.data_error view=%s %s", type(view).__name__ if view else None, exc)
        return Response(
            error_body(
                400,
                "invalid",
                _("A value is out of range or contains characters that cannot be stored."),
                {},
            ),
            status=400,
        )
    if isinstance(exc, ValueError | TypeError | DjangoValidationError) and _from_a_lookup(exc):
        # A path id that is not a number (`/queries/abc/`) fails the model field's
        # conversion in `get_object_or_404`: no such object, as DRF's own helper answers.
        return Response(error_body(404, "not_found", _("Not found."), {}), status=404)
    if isinstance(exc, OperationalError) and _is_deadlock(exc):
        log.warning("api.deadlock view=%s", type(view).__name__ if view else None)
        return Response(
            error_body(409, "conflict", _("A concurrent change got in the way; try again."), {}),
            status=409,
        )
    log.exception("api.unhandled view=%s", type(view).__name__ if view else None)
    return Response(error_body(500), status=500)


def _from_a_lookup(exc: Exception) -> bool:
    """Raised converting a lookup value for the database (a model field or a lookup)?"""
    traceback = exc.__traceback__
    last = None
    while traceback is not None:
        last = traceback.tb_frame.f_code.co_filename
        traceback = traceback.tb_next
    return last is not None and (
        last.endswith(("django/db/models/lookups.py", "django/db/models/query.py"))
        or "django/db/models/fields/" in last
    )


def _is_deadlock(exc: Exception) -> bool:
    cause = exc.__cause__
    return type(cause).__name__ in ("DeadlockDetected", "SerializationFailure")
