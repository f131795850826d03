"""GET /api/v1/jobs/ builds its rows by hand (job_rows): they must equal JobSerializer's, and
the list must run a fixed number of queries whatever the number of jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from scheduler import messages
from scheduler.api.jobs import JobSerializer, job_row_values, job_rows
from scheduler.models import Job, QueueOrder, Sweep
from scheduler.services.access import visible_jobs


def make_jobs(persona, team, node, count: int) -> list[Job]:
    now = timezone.now()
    sweep = Sweep.objects.create(
        name="lr",
        owner=persona.user,
        team=team,
        template={"image": "x:1"},
        parameters={"grid": {"lr": [0.1, 0.01]}},
        created_at=now,
    )
    statuses = ["queued", "running", "succeeded", "failed", "cancelled", "admitted", "lost"]
    jobs = []
    for i in range(count):
        status = statuses[i % len(statuses)]
        on_node = status in ("running", "admitted")
        jobs.append(
            Job(
                name=f"train-{i}",
                owner=persona.user,
                team=team,
                image="pytorch/pytorch:2.4",
                command=["python", "train.py", "--name", "ünïcode"],
                args=["--lr", "0.1"] if i % 2 else [],
                env={"SEED": str(i), "EMPTY": ""},
                gpus=i % 3,
                gpu_models=["NVIDIA-A100-SXM4-80GB"] if i % 4 == 0 else [],
                cpu_millis=1500,
                memory_mb=8192,
                max_runtime_s=3600,
                priority_class="high" if i % 5 == 0 else "normal",
                preemptible=bool(i % 2),
                mounts=[{"name": "data", "path": "/data", "read_only": True}] if i % 3 else [],
                secret_env={"TOKEN": "hf/token"} if i % 6 == 0 else {},
                status=status,
                reason=("behind" if i % 2 else "Waiting") if status == "queued" else "",
                message=(
                    messages.WAIT_BEHIND_OTHERS
                    if status == "queued" and i % 2
                    else 'a message with "quotes" and 日本語'
                    if i % 7 == 0
                    else ""
                ),
                attempt=1 + i % 2,
                eta=now + timedelta(minutes=i, microseconds=i) if status == "queued" else None,
                node=node if on_node else None,
                gpu_indices=[0, 1] if on_node else [],
                borrowed=i % 8 == 0,
                exit_code=(0 if status == "succeeded" else 137) if status != "queued" else None,
                submitted_at=now - timedelta(minutes=count - i, microseconds=123),
                admitted_at=now - timedelta(minutes=1) if on_node else None,
                started_at=now - timedelta(seconds=30) if status == "running" else None,
                finished_at=now if status in ("succeeded", "failed") else None,
                sweep=sweep if i % 9 == 0 else None,
                sweep_params={"lr": 0.1} if i % 9 == 0 else {},
            )
        )
    made = Job.objects.bulk_create(jobs)
    # The last cycle's line: every queued job but the last (queued since that cycle).
    queued = [j.pk for j in made if j.status == "queued"][:-1]
    QueueOrder.record(now, queued, [3 * i for i in range(len(queued))])
    return made


def rendered(data) -> bytes:
    return JSONRenderer().render(data)


def jobs_rows_of(jobs):
    """The rows the list reads, for the jobs of `jobs` in its order."""
    return job_row_values().filter(pk__in=jobs.values("pk")).order_by("-submitted_at", "-pk")


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/St_Johns"])
def test_job_rows_equal_the_serializer(alice, vision, nodes, zone):
    make_jobs(alice, vision, nodes["tesla-01"], 30)
    jobs = visible_jobs(alice.user).order_by("-submitted_at", "-pk")
    with timezone.override(zone):
        expected = JobSerializer(jobs, many=True).data
        rows = job_rows(jobs_rows_of(jobs))
    assert rows == expected
    # Byte for byte: the same keys in the same order, and types (True is not 1).
    assert rendered(rows) == rendered(expected)


def test_positions_and_counts_come_from_the_last_cycles_line(alice, vision, nodes):
    """A queued job's place and "behind N" are the cycle's ``QueueOrder``, not its row: in
    the list and the detail alike; a job queued since the cycle has none."""
    made = make_jobs(alice, vision, nodes["tesla-01"], 30)
    queued = [j for j in made if j.status == "queued"]
    client = alice.client()
    listed = {r["id"]: r for r in client.get("/api/v1/jobs/?page_size=100").json()["results"]}
    for i, job in enumerate(queued):
        detail = client.get(f"/api/v1/jobs/{job.pk}/").json()
        for row in (listed[job.pk], detail):
            if job is queued[-1]:
                assert row["queue_position"] is None
                assert row["message"] == job.message
            else:
                assert row["queue_position"] == i + 1
                if job.reason == "behind":
                    assert row["message"] == f"behind {3 * i} jobs of higher rank"
    assert all(listed[j.pk]["queue_position"] is None for j in made if j.status != "queued")


def test_job_list_output_equals_the_serializer_page_by_page(alice, vision, nodes):
    make_jobs(alice, vision, nodes["tesla-01"], 23)
    client = alice.client()
    ordered = list(visible_jobs(alice.user).order_by("-submitted_at", "-pk"))
    first = client.get("/api/v1/jobs/?page_size=10").json()
    assert first["count"] == 23
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/v1/jobs/?page=2&page_size=10"
    assert first["results"] == JobSerializer(ordered[:10], many=True).data
    assert rendered(first["results"]) == rendered(JobSerializer(ordered[:10], many=True).data)
    last = client.get("/api/v1/jobs/?page=3&page_size=10").json()
    assert last["results"] == JobSerializer(ordered[20:], many=True).data
    assert (last["count"], last["next"]) == (23, None)
    running = client.get("/api/v1/jobs/?status=running&mine=1").json()
    expected = [j for j in ordered if j.status == "running"]
    assert running["count"] == len(expected) > 0
    assert running["results"] == JobSerializer(expected, many=True).data


@pytest.mark.parametrize("count", [5, 50, 120])
def test_job_list_runs_a_fixed_number_of_queries(
    alice, vision, nodes, count, django_assert_num_queries
):
    make_jobs(alice, vision, nodes["tesla-01"], count)
    client = alice.client()
    client.get("/api/v1/me/")  # the token lookup and its use are recorded once
    # One page fitting in one query (the page and one row more tell the count); a longer
    # list adds its COUNT(*), a page with a queued job the last cycle's line (one query,
    # whether the process knows that line or not). Never a query per job.
    with django_assert_num_queries((1 if count <= 50 else 2) + 1):
        body = client.get("/api/v1/jobs/").json()
    assert body["count"] == count
    assert len(body["results"]) == min(count, 50)
