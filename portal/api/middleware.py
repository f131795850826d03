"""Keep every response under /api/ in the JSON error shape.

Three things reach a client without passing DRF's exception handler: Django's own 404 for
an unknown route (an HTML page, a technical one under DEBUG), a body too large to accept,
and an exception outside a DRF view. This middleware answers all three in JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import translation
from django.utils.translation import gettext as _

from portal.accounts.language import request_language
from portal.api.exceptions import error_response

log = logging.getLogger("karimasu.api")

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _has_nul(request: HttpRequest) -> bool:
    """A NUL character in the path or the query (PostgreSQL cannot compare text with one)."""
    if "\x00" in request.path:
        return True
    query = request.META.get("QUERY_STRING", "")
    if "%00" not in query and "\x00" not in query:
        return False
    return any("\x00" in k or any("\x00" in v for v in vs) for k, vs in request.GET.lists())


class ApiErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            # Refused before LocaleMiddleware runs: in the language of the request (its
            # cookie or Accept-Language) or of its user (looked up only now).
            with translation.override(request_language(request)):
                return refusal()
        if not _is_api(request):
            return self.get_response(request)
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if response.status_code >= 400 and not content_type.startswith("application/json"):
            # A non-JSON error from below (unknown route, CSRF, a Host not allowed, DEBUG
            # pages): same status, JSON body, in the language of the request or its user
            # (a token's user is not known below DRF).
            with translation.override(request_language(request)):
                message = None
                if response.status_code == 404:
                    message = _("No API endpoint at %(method)s %(path)s.") % {
                        "method": request.method,
                        "path": request.path,
                    }
                return error_response(response.status_code, message=message)
        return response

    @staticmethod
    def _refusal(request: HttpRequest) -> Callable[[], HttpResponse] | None:
        """How to refuse ``request`` before any view runs (the answer is made by the caller,
        in the reader's language), or None to let it through."""
        if _has_nul(request):
            if not _is_api(request):
                return lambda: HttpResponseBadRequest(_("NUL characters are not allowed in URLs."))
            return lambda: error_response(
                400, message=_("NUL characters are not allowed in URLs."), details={}
            )
        if not _is_api(request):
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return lambda: error_response(400, message=_("Invalid Content-Length header."))
        if limit is not None and length > limit:
            return lambda: error_response(
                413,
                message=_("Request body exceeds %(limit)s bytes.") % {"limit": limit},
                details={"limit_bytes": limit, "content_length": length},
            )
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _is_api(request):
            return None
        log.exception("api.unhandled path=%s", request.path)
        return error_response(500)
