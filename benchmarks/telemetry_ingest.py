"""Telemetry ingest cost: 1,000 GPUs (125 nodes x 8) sampled every 10 s for a simulated hour.

Two rhythms: the agent's default (a post every 30 s carrying 3 readings) and a post for every
reading (`--send-interval 0`). Each post goes through the whole stack:
Django test client -> middleware -> node-token authentication -> batch check -> bulk insert
of raw samples, merge of one-minute rollups and job summaries, latest-state upsert. Every
eighth GPU is held by a job so job summaries are exercised; the retention task runs at the
end. CPU is `time.process_time()` of the portal side only (building the agents' JSON is
not counted). Goal: <= 10 % of one core per simulated hour.

baseline: `json.loads` of the same batch bodies (the least any ingest could cost), reported
as the ratio ingest / baseline so the figure travels between machines.

`TELEMETRY_BENCH_MINUTES` (default 60) shortens the simulated period for a quick look; the
result is still given per simulated hour.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime, timedelta

NODES = 125
GPUS_PER_NODE = 8
INTERVAL_S = 10


def _gpus(node: str, rng: random.Random, held: dict[int, int]) -> list[dict]:
    gpus = []
    for index in range(GPUS_PER_NODE):
        util = float(rng.randint(0, 100))
        processes = []
        if index in held:
            processes = [
                {
                    "pid": 1000 + index,
                    "used_memory_mib": 4096.0,
                    "pod_uid": None,
                    "job_id": held[index],
                    "attempt": 1,
                    "foreign": False,
                }
            ]
        gpus.append(
            {
                "index": index,
                "uuid": f"GPU-{node}-{index:04d}",
                "name": "NVIDIA H100 80GB HBM3",
                "healthy": True,
                "error": None,
                "memory_total_mib": 81559.0,
                "memory_used_mib": float(rng.randint(0, 81559)),
                "utilization_gpu_pct": util,
                "utilization_memory_pct": util / 2,
                "temperature_c": 40.0 + util / 3,
                "power_draw_w": 70.0 + util * 6,
                "power_limit_w": 700.0,
                "ecc_uncorrected": 0,
                "throttle_reasons": [] if util else ["gpu_idle"],
                "processes": processes,
            }
        )
    return gpus


def _body(node: str, times: list[datetime], rng: random.Random, held: dict[int, int]) -> bytes:
    readings = [
        {
            "at": at.isoformat().replace("+00:00", "Z"),
            "healthy": True,
            "error": None,
            "gpus": _gpus(node, rng, held),
        }
        for at in times
    ]
    batch = {
        "node": node,
        "source": "bench",
        "interval_s": INTERVAL_S,
        "dropped": 0,
        "readings": readings,
    }
    return json.dumps(batch).encode()


def run() -> None:
    import logging

    from django.test.utils import override_settings

    logging.getLogger("karimasu.telemetry").setLevel(logging.WARNING)
    minutes = int(os.environ.get("TELEMETRY_BENCH_MINUTES", "60"))
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        print(
            f"## telemetry_ingest: {NODES * GPUS_PER_NODE} GPUs ({NODES} nodes x "
            f"{GPUS_PER_NODE}) sampled every {INTERVAL_S} s, {minutes} simulated min"
        )
        for readings_per_batch, label in (
            (3, "agent default, a post every 30 s"),
            (1, "a post for every reading"),
        ):
            _mode(minutes, readings_per_batch, label)


def _mode(minutes: int, per_batch: int, label: str) -> None:
    from django.test import Client
    from django.utils import timezone

    from portal.accounts.models import Team, User
    from scheduler.models import Gpu, Job, Node
    from scheduler.telemetry import services
    from scheduler.telemetry.models import GpuMinute, GpuSample

    ticks = minutes * 60 // INTERVAL_S
    now = timezone.now()
    tag = f"bench-{per_batch}"
    user = User.objects.create_user(tag)
    team = Team.objects.create(slug=tag, name=tag)
    client, agents, held = Client(), [], []
    for n in range(NODES):
        node = Node.objects.create(
            name=f"{tag}-gpu-{n:03d}",
            gpu_capacity=GPUS_PER_NODE,
            first_seen_at=now,
            last_seen_at=now,
        )
        Gpu.objects.bulk_create(Gpu(node=node, index=i) for i in range(GPUS_PER_NODE))
        job = Job.objects.create(
            name="bench",
            owner=user,
            team=team,
            image="x",
            max_runtime_s=7200,
            status="running",
            node=node,
            gpu_indices=[0],
            submitted_at=now,
        )
        held.append({0: job.pk})
        _, token = services.create_node_token(node, now=now)
        agents.append((node, f"Bearer {token}"))

    rng = random.Random(5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ingest_cpu = decode_cpu = 0.0
    batches = 0
    wall = time.perf_counter()
    for tick in range(0, ticks, per_batch):
        times = [start + timedelta(seconds=(tick + i) * INTERVAL_S) for i in range(per_batch)]
        for n, (node, auth) in enumerate(agents):
            body = _body(node.name, times, rng, held[n])
            t0 = time.process_time()
            json.loads(body)
            t1 = time.process_time()
            response = client.post(
                "/api/v1/telemetry/", body, content_type="application/json", HTTP_AUTHORIZATION=auth
            )
            t2 = time.process_time()
            assert response.status_code == 202, response.content[:300]
            decode_cpu += t1 - t0
            ingest_cpu += t2 - t1
            batches += 1
    t0 = time.process_time()
    services.apply_retention(now=start + timedelta(minutes=minutes))
    retention_cpu = time.process_time() - t0
    wall = time.perf_counter() - wall

    nodes = [node for node, _ in agents]
    scale = 60 / minutes
    per_hour = (ingest_cpu + retention_cpu) * scale
    samples = GpuSample.objects.filter(gpu__node__in=nodes).count()
    rollups = GpuMinute.objects.filter(gpu__node__in=nodes).count()
    print(f"### {label}: {batches} batches, {samples} samples, {rollups} rollup rows")
    print(
        f"ingest CPU per simulated hour: {per_hour:.1f} s = {per_hour / 36:.2f} % of one core "
        f"(goal <= 10 %); per batch {ingest_cpu / batches * 1e3:.2f} ms; "
        f"retention {retention_cpu:.2f} s; wall {wall:.0f} s"
    )
    print(
        f"baseline (json.loads of the same bodies): {decode_cpu * scale:.2f} s per hour; "
        f"ingest / baseline = {ingest_cpu / max(decode_cpu, 1e-9):.0f}x"
    )
