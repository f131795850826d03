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
        if self._refuses_early(request):
            # Refused before LocaleMiddleware runs, or a token is read: in the language of
            # the request (its cookie or Accept-Language) or of its user.
            with translation.override(request_language(request)):
                early = self._refuse_early(request)
            if early is not None:
                return early
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

    def _refuses_early(self, request: HttpRequest) -> bool:
        """Whether ``_refuse_early`` answers (cheap: no language looked up for others)."""
        if _has_nul(request):
            return True
        if not _is_api(request):
            return False
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit():
            return True
        return limit is not None and int(length) > limit

    def _refuse_early(self, request: HttpRequest) -> HttpResponse | None:
        if _has_nul(request):
            if not _is_api(request):
                return HttpResponseBadRequest(_("NUL characters are not allowed in URLs."))
            return error_response(
                400, message=_("NUL characters are not allowed in URLs."), details={}
            )
        if not _is_api(request):
            return None
        return self._reject_large_body(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _is_api(request):
            return None
        log.exception("api.unhandled path=%s", request.path)
        return error_response(500)

    @staticmethod
    def _reject_large_body(request: HttpRequest) -> HttpResponse | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, message=_("Invalid Content-Length header."))
        if limit is not None and length > limit:
            return error_response(
                413,
                message=_("Request body exceeds %(limit)s bytes.") % {"limit": limit},
                details={"limit_bytes": limit, "content_length": length},
            )
        return None
