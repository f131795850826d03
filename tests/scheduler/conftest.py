"""Scheduler fixtures: nodes and GPUs as rows (no cluster needed), a clock, eager notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from scheduler import states
from scheduler.models import Gpu, Job, Node


def submit_job(persona, headers: dict[str, str] | None = None, **overrides):
    """POST a job through the API as ``persona``: a 1-GPU, one-hour training job of team
    vision unless ``overrides`` say otherwise."""
    body = {
        "name": "resnet",
        "team": "vision",
        "image": "pytorch/pytorch:2.4",
        "command": ["python", "train.py"],
        "gpus": 1,
        "max_runtime_s": 3600,
        **overrides,
    }
    return persona.client().post("/api/v1/jobs/", body, format="json", **(headers or {}))


def create_job(persona, team, status: str = states.QUEUED, **fields) -> Job:
    """A job row of ``persona`` in ``team`` as the cycle's tests need it: one hour long,
    submitted five minutes ago unless ``fields`` say otherwise."""
    return Job.objects.create(
        name="train",
        owner=persona.user,
        team=team,
        image="pytorch/pytorch:2.4",
        max_runtime_s=fields.pop("max_runtime_s", 3600),
        submitted_at=fields.pop("submitted_at", timezone.now() - timedelta(minutes=5)),
        status=status,
        **fields,
    )


def make_node(name: str, gpus: int = 2, model: str = "Tesla-V100-SXM2-16GB", **fields) -> Node:
    now = timezone.now()
    fields = {"cpu_allocatable_millis": 32_000, "memory_allocatable_mb": 256 * 1024, **fields}
    node = Node.objects.create(
        name=name,
        gpu_model=model,
        gpu_memory_mb=16384,
        gpu_capacity=gpus,
        gpu_allocatable=gpus,
        ready=True,
        first_seen_at=now,
        last_seen_at=now,
        **fields,
    )
    Gpu.objects.bulk_create(
        Gpu(node=node, index=i, model=model, memory_mb=16384) for i in range(gpus)
    )
    return node


@pytest.fixture
def nodes(db):
    """tesla-01, tesla-02 (2 x V100 each) and a100-01 (4 x A100)."""
    return {
        n.name: n
        for n in [
            make_node("tesla-01"),
            make_node("tesla-02"),
            make_node("a100-01", 4, "NVIDIA-A100-SXM4-80GB"),
        ]
    }


@pytest.fixture
def eager_tasks():
    """Celery tasks run inline (for notices); on_commit callbacks are run by the test."""
    from portal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # a Monday, far enough ahead to book
