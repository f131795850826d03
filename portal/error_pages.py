"""The portal's own 404 and 500 pages, in the reader's language, for pages (the API keeps
its JSON errors: ``portal.api.middleware``).

Django uses ``handler404``/``handler500`` only with DEBUG off; the demo runs with DEBUG on,
where Django answers its technical pages instead. ``FriendlyNotFoundMiddleware`` replaces
those technical 404 pages with ours so an unknown address looks the same in the demo as in
production (tracebacks of 500s stay technical under DEBUG: that is what DEBUG is for).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseServerError
from django.template import loader

from portal.api.middleware import API_PREFIX


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    response = HttpResponseNotFound(loader.render_to_string("404.html", {}, request))
    response.karimasu_page = True  # type: ignore[attr-defined]
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    # No request context: whatever failed (the database?) must not fail this page too.
    return HttpResponseServerError(loader.render_to_string("500.html"))


class FriendlyNotFoundMiddleware:
    """Under DEBUG, a page's 404 (not the API's) is answered with the portal's 404 page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and response.status_code == 404
            and not request.path.startswith(API_PREFIX)
            and not getattr(response, "karimasu_page", False)
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return page_not_found(request)
        return response
