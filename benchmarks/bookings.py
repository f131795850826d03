"""Booking throughput, alone and under contention, as a ratio to a trivial request.

baseline:   GET /healthz from the same threads
free:       POST /api/v1/reservations/ for distinct slots (every booking succeeds)
contended:  8 threads book the same 20 slots at once (1 winner per slot, the rest 409)

Runs in-process (Django test client, one per thread) on the database DATABASE_URL names:
the benchmark runner's throwaway SQLite by default, PostgreSQL when set.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

THREADS = 8
FREE_BOOKINGS = 400
CONTENDED_SLOTS = 20


def _run_threads(work) -> float:  # type: ignore[no-untyped-def]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def run() -> None:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from portal.accounts import services
    from portal.accounts.models import Membership, Team, User
    from scheduler.models import Gpu, Node, TeamPolicy

    now = timezone.now()
    team = Team.objects.create(slug="bench", name="Bench")
    TeamPolicy.objects.create(
        team=team, max_booking_hours=None, max_days_ahead=None, max_gpus_per_user=None
    )
    for n in range(4):
        node = Node.objects.create(
            name=f"n{n}",
            gpu_model="V100",
            gpu_capacity=8,
            gpu_allocatable=8,
            ready=True,
            first_seen_at=now,
            last_seen_at=now,
        )
        Gpu.objects.bulk_create(Gpu(node=node, index=i) for i in range(8))
    tokens = []
    for i in range(THREADS):
        user = User.objects.create_user(f"bench{i}")
        Membership.objects.create(team=team, user=user)
        tokens.append(services.create_api_token(user, name="b", now=now)[1])
    base = now.replace(microsecond=0) + timedelta(hours=1)

    def booking(slot: int, gpu: int) -> dict[str, object]:
        start = base + timedelta(hours=slot)
        return {
            "team": "bench",
            "node": f"n{slot % 4}",
            "gpus": [gpu],
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
        }

    statuses: list[int] = []

    def healthz(i: int) -> None:
        client = Client()
        for _ in range(FREE_BOOKINGS // THREADS):
            client.get("/healthz")

    def free(i: int) -> None:
        client = Client(headers={"authorization": f"Bearer {tokens[i]}"})
        for k in range(FREE_BOOKINGS // THREADS):
            response = client.post(
                "/api/v1/reservations/", booking(1000 + k, i), content_type="application/json"
            )
            statuses.append(response.status_code)

    def contended(i: int) -> None:
        client = Client(headers={"authorization": f"Bearer {tokens[i]}"})
        for slot in range(CONTENDED_SLOTS):
            response = client.post(
                "/api/v1/reservations/", booking(slot, 0), content_type="application/json"
            )
            statuses.append(response.status_code)

    rates = {"user": "1000000/min", "anon": "1000000/min"}
    with override_settings(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    ):
        base_s = _run_threads(healthz)
        free_s = _run_threads(free)
        assert statuses.count(201) == FREE_BOOKINGS, statuses[:10]
        statuses.clear()
        cont_s = _run_threads(contended)
    won = statuses.count(201)
    assert won == CONTENDED_SLOTS, f"{won} winners for {CONTENDED_SLOTS} slots"
    assert statuses.count(409) == CONTENDED_SLOTS * (THREADS - 1)
    attempts = CONTENDED_SLOTS * THREADS
    print(
        f"bookings ({connection.vendor}, {THREADS} threads): "
        f"healthz {FREE_BOOKINGS / base_s:.0f}/s; free slots {FREE_BOOKINGS / free_s:.0f} "
        f"bookings/s ({base_s / free_s:.3f}x healthz); contended {attempts / cont_s:.0f} "
        f"attempts/s ({base_s / FREE_BOOKINGS * attempts / cont_s:.3f}x healthz), "
        f"{won} won, {attempts - won} got 409, 0 double bookings"
    )
