"""Cost of an authenticated API request, as a ratio to the cheapest request.

baseline: GET /healthz (middleware stack, no auth, no database)
measured: GET /api/v1/me/ with a Bearer token (token digest lookup, user + teams query,
          throttle bookkeeping, JSON rendering)
"""

from __future__ import annotations

import statistics
import time

N = 2000


def _time_requests(client, path: str, headers: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(N):
        start = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append(time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
    return samples


def run() -> None:
    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from portal.accounts import services
    from portal.accounts.models import Membership, Team, User

    user = User.objects.create_user("bench")
    for i in range(3):
        team = Team.objects.create(slug=f"bench-{i}", name=f"Bench {i}")
        Membership.objects.create(team=team, user=user)
    _, token = services.create_api_token(user, name="bench", now=timezone.now())
    client = Client()
    rates = {"user": "1000000/min", "anon": "1000000/min"}
    with override_settings(
        REST_FRAMEWORK={
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": rates,
        },
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    ):
        _time_requests(client, "/healthz", {})  # warm up both paths
        base = _time_requests(client, "/healthz", {})
        auth = _time_requests(client, "/api/v1/me/", {"authorization": f"Bearer {token}"})
    b, a = statistics.median(base), statistics.median(auth)
    print(
        f"api_auth: healthz median {b * 1e6:.0f} us, /api/v1/me/ with Bearer median "
        f"{a * 1e6:.0f} us, ratio {a / b:.1f}x over {N} requests each "
        f"({1 / a:.0f} authenticated requests/s on one core, in-process, SQLite)"
    )
