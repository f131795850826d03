"""Pages that refresh themselves: the same view answers ``?live=1`` with its live regions
rendered as HTML in JSON, and ``frontend/static/karimasu/live.js`` swaps them in.

A page marks each region ``<div data-live="name">`` and includes the region's template
there; the view names the same templates. Polling a page's own view keeps one source of
truth for what a region shows (filters, translations, time zone) and needs no script
beyond ``live.js`` (no inline script, no eval: the Content-Security-Policy holds).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers

# CSRF tokens are masked afresh on every render: left out of a region's version.
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


def wants_live(request: HttpRequest) -> bool:
    return request.method == "GET" and request.GET.get("live") == "1"


def live_regions(
    request: HttpRequest,
    regions: Mapping[str, str],
    context: dict[str, Any],
    *,
    stop: bool = False,
) -> JsonResponse:
    """``{"regions": {name: {"html", "v"}}, "stop"}``: ``v`` changes only when what the
    region shows changes; ``stop`` tells the script that nothing will change any more."""
    rendered: dict[str, dict[str, str]] = {}
    for name, template_name in regions.items():
        html = render_to_string(template_name, context, request)
        digest = hashlib.sha256(_CSRF.sub("", html).encode()).hexdigest()[:16]
        rendered[name] = {"html": html, "v": digest}
    response = JsonResponse({"regions": rendered, "stop": stop})
    add_never_cache_headers(response)
    return response


def render_live(
    request: HttpRequest,
    template_name: str,
    context: dict[str, Any],
    regions: Mapping[str, str],
    *,
    stop: bool = False,
) -> HttpResponse:
    """The page, or (``?live=1``) only its live regions."""
    if wants_live(request):
        return live_regions(request, regions, context, stop=stop)
    return render(request, template_name, context)
