"""GET /api/v1/nodes/ builds its rows by hand (node_rows): they must equal NodeSerializer's,
and gpu_holders (now from plain rows) must name the same holders as from model instances."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db.models import Prefetch
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from scheduler.api.serializers import NodeSerializer
from scheduler.api.views import node_rows
from scheduler.models import Gpu, Job, Node, Reservation, ReservationSlot
from scheduler.services.board import Holder, gpu_holders
from scheduler.telemetry.models import GpuState
from tests.scheduler.conftest import make_node


def old_gpu_holders(now):
    """gpu_holders as it was, from model instances: the reference."""
    holders = {}
    slots = ReservationSlot.objects.filter(
        active=True, start__lte=now, end__gt=now, reservation__status__in=["booked", "active"]
    ).select_related("gpu", "reservation__holder", "reservation__team")
    for slot in slots:
        res = slot.reservation
        holders[(slot.gpu.node_id, slot.gpu.index)] = Holder(
            "booking", res.pk, res.holder.get_username(), res.team.slug, slot.end
        )
    jobs = Job.objects.filter(
        status__in=["admitted", "starting", "running"], node__isnull=False
    ).select_related("owner", "team")
    for job in jobs:
        began = job.started_at or job.admitted_at or now
        until = began + timedelta(seconds=job.max_runtime_s)
        for index in job.gpu_indices or []:
            holders[(job.node_id, index)] = Holder(
                "job", job.pk, job.owner.get_username(), job.team.slug, until
            )
    return holders


@pytest.fixture
def board(alice, bob, vision, nodes):
    """Nodes with telemetry on some GPUs, a missing GPU, a gone node, jobs and bookings."""
    now = timezone.now()
    a100 = nodes["a100-01"]
    a100.taints = [{"key": "gpu", "value": "a100", "effect": "NoSchedule"}]
    a100.cordoned = True
    a100.gpu_allocation = "dra"
    a100.save()
    Gpu.objects.filter(node=a100, index=3).update(present=False, healthy=False)
    Gpu.objects.filter(node=nodes["tesla-02"], index=1).update(healthy=False, uuid="GPU-x")
    for gpu in Gpu.objects.filter(node__in=[a100, nodes["tesla-01"]], index__in=[0, 2]):
        GpuState.objects.create(
            gpu=gpu,
            at=now - timedelta(seconds=12, microseconds=345),
            utilization=87.5 if gpu.index == 0 else None,
            memory_used_mib=12000,
            memory_total_mib=16384,
            temperature_c=None,
            power_w=250,
            foreign_processes=gpu.index,
            error="" if gpu.index == 0 else "NVML: unknown",
        )
    gone = make_node("gone-01", gone_at=now - timedelta(days=1))
    Node.objects.filter(pk=gone.pk).update(ready=False, gpu_memory_mb=None)
    Gpu.objects.filter(node=gone).update(memory_mb=None)
    common = {"owner": alice.user, "team": vision, "image": "x:1", "max_runtime_s": 7200}
    Job.objects.create(
        name="run", status="running", node=a100, gpu_indices=[0, 1], **common,
        submitted_at=now - timedelta(hours=1), started_at=now - timedelta(minutes=30),
    )  # fmt: skip
    Job.objects.create(
        name="adm", status="admitted", node=nodes["tesla-01"], gpu_indices=[1], **common,
        submitted_at=now, admitted_at=now - timedelta(seconds=5),
    )  # fmt: skip
    Job.objects.create(
        name="done", status="succeeded", node=a100, gpu_indices=[2], **common, submitted_at=now
    )
    booking = Reservation.objects.create(
        holder=bob.user, team=vision, node=nodes["tesla-02"], start=now - timedelta(hours=1),
        end=now + timedelta(hours=2), status="active", created_at=now - timedelta(hours=2),
    )  # fmt: skip
    ReservationSlot.objects.create(
        reservation=booking, gpu=Gpu.objects.get(node=nodes["tesla-02"], index=0),
        start=booking.start, end=booking.end,
    )  # fmt: skip
    return now


def serializer_output(nodes, now):
    nodes = Node.objects.filter(pk__in=[n.pk for n in nodes]).prefetch_related(
        Prefetch("gpus", queryset=Gpu.objects.select_related("telemetry_state").order_by("index"))
    )
    context = {"now": now, "holders": gpu_holders(now=now)}
    return NodeSerializer(nodes, many=True, context=context).data


def ageless(rows) -> list[dict]:
    """The rows without the telemetry's sample age (it depends on the request's clock)."""
    rows = json.loads(json.dumps(rows))
    for node in rows:
        for gpu in node["gpus"]:
            if gpu["telemetry"] is not None:
                assert 12 <= gpu["telemetry"].pop("sample_age_s") < 60
    return rows


def test_gpu_holders_name_the_same_holders(board):
    holders = gpu_holders(now=board)
    assert holders == old_gpu_holders(board)
    assert {h.kind for h in holders.values()} == {"job", "booking"}


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_node_rows_equal_the_serializer(board, zone):
    nodes = list(Node.objects.all())
    with timezone.override(zone):
        rows = node_rows(nodes, now=board)
        expected = serializer_output(nodes, board)
    assert rows == expected
    # Byte for byte: the same keys in the same order, and types (True is not 1).
    assert JSONRenderer().render(rows) == JSONRenderer().render(expected)
    assert node_rows([], now=board) == []


def test_nodes_endpoints_output(alice, board, django_assert_num_queries):
    client = alice.client()
    client.get("/api/v1/me/")  # the token lookup and its use are recorded once
    with django_assert_num_queries(4):  # the nodes, their GPUs, the bookings, the jobs
        body = client.get("/api/v1/nodes/").json()
    live = Node.objects.filter(gone_at__isnull=True)
    assert body["count"] == 3
    assert ageless(body["results"]) == ageless(serializer_output(live, board))
    # The holders' and the ages' `now` differ by the time between the two calls.
    everything = client.get("/api/v1/nodes/?include_gone=1").json()
    assert [n["name"] for n in everything["results"]] == [
        "a100-01",
        "gone-01",
        "tesla-01",
        "tesla-02",
    ]
    for name, query in [("tesla-02", ""), ("gone-01", "?include_gone=1")]:
        one = client.get(f"/api/v1/nodes/{name}/{query}").json()
        assert ageless([one]) == ageless(serializer_output([Node.objects.get(name=name)], board))
    assert client.get("/api/v1/nodes/gone-01/").status_code == 404
    assert client.get("/api/v1/nodes/nope/").status_code == 404
