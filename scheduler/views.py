"""Server-rendered and file endpoints of the scheduler."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from scheduler.services.calendar import feed_for_secret


@never_cache
def calendar_feed(request: HttpRequest, secret: str) -> HttpResponse:
    """An iCalendar feed; the secret in the URL is the credential (calendar apps send no
    other). Unknown secrets are a plain 404."""
    body = feed_for_secret(secret, now=timezone.now())
    if body is None:
        raise Http404("No such calendar.")
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="karimasu.ics"'
    return response
