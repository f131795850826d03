"""Page loads: median time of the pages that now refresh themselves, and of their live
(``?live=1``) answers, against issue 18's budget of 400 ms per page load.

Seeds 4 nodes x 2 GPUs, 300 jobs of one team and 40 bookings, a warehouse with 15 of the
user's queries (the SQL editor's recent list), then GETs each page through
the in-process Django test client, signed in as a team member (no network, no browser:
server time only). Runs on the database DATABASE_URL names (the runner's SQLite by default).
"""

from __future__ import annotations

import statistics
import time

REQUESTS = 40
JOBS = 300


def _median_ms(client, url: str) -> float:  # type: ignore[no-untyped-def]
    client.get(url)  # warm up (templates, translations)
    timings = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(timings)


def _seed():  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.test.utils import override_settings
    from django.utils import timezone

    from portal.accounts.models import Membership, Team, User
    from scheduler.models import Gpu, Job, Node, TeamPolicy
    from scheduler.services import reservations

    now = timezone.now()
    team = Team.objects.create(slug="bench", name="Bench")
    TeamPolicy.objects.update_or_create(
        team=team,
        defaults={
            "max_booking_hours": None,
            "max_days_ahead": None,
            "max_gpus_per_user": None,
            "weekly_gpu_hours": None,
        },
    )
    user = User.objects.create_user("bench-pages")
    Membership.objects.create(user=user, team=team, role="lead")
    nodes = []
    for n in range(4):
        node = Node.objects.create(
            name=f"bench-{n}",
            gpu_model="Tesla-V100-SXM2-16GB",
            gpu_capacity=2,
            gpu_allocatable=2,
            ready=True,
            first_seen_at=now,
            last_seen_at=now,
        )
        Gpu.objects.bulk_create(Gpu(node=node, index=i, model=node.gpu_model) for i in range(2))
        nodes.append(node)
    statuses = ["queued", "running", "succeeded", "failed", "starting"]
    Job.objects.bulk_create(
        Job(
            name=f"job-{i}",
            owner=user,
            team=team,
            image="pytorch/pytorch:2.4",
            gpus=1,
            max_runtime_s=14400,
            status=statuses[i % len(statuses)],
            reason="image_pull_failure" if i % len(statuses) == 4 else "",
            submitted_at=now - timedelta(minutes=i),
        )
        for i in range(JOBS)
    )
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        from unittest import mock

        from scheduler import tasks

        with (
            mock.patch.object(tasks.notify_reservation, "delay"),
            mock.patch.object(tasks.schedule_cycle, "delay"),
        ):
            for i in range(40):
                start = now + timedelta(hours=3 * i)
                reservations.reserve_gpus(
                    user,
                    team=team,
                    node=nodes[i % 4],
                    gpu_indices=[i % 2],
                    start=start,
                    end=start + timedelta(hours=2),
                    now=now,
                )
    from querygate.models import Query, Warehouse

    warehouse = Warehouse.objects.create(
        name="bench", engine="duckdb", connection="bench.duckdb", open_to_all=True
    )
    Query.objects.bulk_create(
        Query(
            user=user,
            team=team,
            warehouse=warehouse,
            sql=f"SELECT n_name FROM nation LIMIT {i + 1}",  # noqa: S608 - text stored, never run
            status="succeeded",
            created_at=now - timedelta(minutes=i),
        )
        for i in range(15)
    )
    queued = Job.objects.filter(owner=user, status="queued").order_by("-pk").first()
    return user, queued


def run() -> None:
    from django.db import connection
    from django.test import Client

    user, job = _seed()
    client = Client(HTTP_HOST="localhost")  # one of the debug ALLOWED_HOSTS
    client.force_login(user)
    pages = {
        "dashboard /": "/",
        "jobs /jobs/": "/jobs/",
        "job /jobs/{id}/": f"/jobs/{job.pk}/",
        "bookings /bookings/": "/bookings/",
        "sql editor /sql/": "/sql/",
    }
    # Pages without live regions, and the calendar's data (what its script polls).
    plain = {
        "team /teams/bench/": "/teams/bench/",
        "calendar data /api/v1/calendar/": "/api/v1/calendar/",
    }
    parts = []
    for name, url in pages.items():
        page = _median_ms(client, url)
        live = _median_ms(client, url + ("&" if "?" in url else "?") + "live=1")
        parts.append(f"{name} {page:.0f} ms (live {live:.0f} ms)")
    for name, url in plain.items():
        parts.append(f"{name} {_median_ms(client, url):.0f} ms")
    worst = max(_median_ms(client, url) for url in [*pages.values(), *plain.values()])
    print(
        f"pages ({connection.vendor}, median of {REQUESTS}, {JOBS} jobs, 40 bookings): "
        + "; ".join(parts)
        + f"; slowest page {worst:.0f} ms, budget 400 ms"
    )
