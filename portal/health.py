"""Liveness and readiness for Kubernetes probes and for people checking a deployment."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

log = logging.getLogger("karimasu.health")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """This process can serve pages: its database answers; 503 when it does not.

    The broker is deliberately not checked: every web pod shares it, so a Redis blip would
    take every pod out of the Service at once, while pages and most of the API keep working
    without it (tasks queue again when it is back). Workers report the broker themselves.
    """
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        log.warning("readyz.database_failed error=%s", exc)
        checks["database"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
