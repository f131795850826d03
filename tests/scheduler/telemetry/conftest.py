"""Telemetry fixtures: a node with GPUs, its agent's token, jobs on it, batch builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from scheduler.models import Gpu, Job, Node
from scheduler.telemetry import services

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
# The portal's clock during these tests: readings are accepted only in
# [now - rollup retention, now + clock skew], so the fixed T0 must stay inside that window.
NOW = T0 + timedelta(hours=1)


@pytest.fixture(autouse=True)
def _portal_clock(monkeypatch):
    from scheduler.telemetry.api import views

    monkeypatch.setattr(views, "now", lambda: NOW)


def make_node(name: str = "gpu-01", gpus: int = 2) -> Node:
    node = Node.objects.create(
        name=name,
        gpu_model="Tesla-V100-SXM2-16GB",
        gpu_capacity=gpus,
        gpu_allocatable=gpus,
        ready=True,
        first_seen_at=T0 - timedelta(days=1),
        last_seen_at=T0,
    )
    for i in range(gpus):
        Gpu.objects.create(node=node, index=i, model=node.gpu_model, memory_mb=16384)
    return node


@pytest.fixture
def node(db) -> Node:
    return make_node()


@pytest.fixture
def node_token(node) -> str:
    _, plaintext = services.create_node_token(node, now=T0)
    return plaintext


@pytest.fixture
def agent_client(node_token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {node_token}")
    return client


@pytest.fixture
def make_job(node, alice, vision):
    def make(status: str = "running", indices=(0,), owner=None) -> Job:
        owner = owner or alice.user
        return Job.objects.create(
            name="train",
            owner=owner,
            team=vision,
            image="pytorch/pytorch:2.4",
            gpus=len(indices),
            max_runtime_s=3600,
            status=status,
            node=node,
            gpu_indices=list(indices),
            submitted_at=T0 - timedelta(minutes=5),
        )

    return make


def gpu_data(index: int, util: float | None = 50.0, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "index": index,
        "uuid": f"GPU-0000000{index}-aaaa-bbbb-cccc-000000000000",
        "name": "Tesla V100",
        "healthy": True,
        "memory_total_mib": 16384.0,
        "memory_used_mib": 1000.0,
        "utilization_gpu_pct": util,
        "utilization_memory_pct": 10.0,
        "temperature_c": 40.0,
        "power_draw_w": 100.0,
        "power_limit_w": 300.0,
        "ecc_uncorrected": 0,
        "throttle_reasons": [],
        "processes": [],
    }
    data.update(extra)
    return data


def reading(at: datetime, gpus: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"at": at.isoformat().replace("+00:00", "Z"), "healthy": True, "gpus": gpus, **extra}


def batch(readings: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "node": "gpu-01",
        "source": "test",
        "interval_s": 10,
        "dropped": 0,
        "readings": readings,
        **extra,
    }
