"""A real Celery worker, started as its own process, runs a task through the real broker.

Under CI the broker is Redis and the database PostgreSQL (.ci/run); locally without them,
Kombu's filesystem transport and a SQLite file. Either way nothing is eager or mocked: the
task crosses the broker, a separate process runs it against the test database, and the
result comes back through the result backend.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from portal.accounts import services
from portal.accounts.models import ApiToken, User
from portal.accounts.tasks import purge_dead_tokens

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]


def _test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@contextmanager
def celery_worker(
    *,
    pool: str = "solo",
    concurrency: int = 1,
    env: dict[str, str] | None = None,
    queue: str | None = None,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A worker process consuming a queue of its own (``queue``, or a fresh name), against
    the test database and the configured broker: ``(queue, process)``; what it sends with
    ``.delay()`` stays on that queue. Stopped (its output printed) on exit."""
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    environment = {
        **os.environ,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        **(env or {}),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--queues",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{queue}@%h",
        ],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue, proc
    finally:
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        print(output)  # shown by pytest when the test fails


@pytest.fixture
def worker_queue():
    """Start a worker consuming a queue of its own; stop it after the test."""
    with celery_worker() as (queue, _):
        yield queue


def test_worker_runs_a_task_from_the_broker_against_the_database(worker_queue):
    now = timezone.now()
    user = User.objects.create_user("worker-test")
    dead, _ = services.create_api_token(user, name="dead", now=now - timedelta(days=90))
    services.revoke_api_token(user, dead.pk, now=now - timedelta(days=60))
    live, _ = services.create_api_token(user, name="live", now=now)

    result = purge_dead_tokens.apply_async(queue=worker_queue)
    assert result.get(timeout=60) == 1  # the worker's own answer, through the result backend

    assert result.successful()
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [live.pk]
