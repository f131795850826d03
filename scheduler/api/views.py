"""The GPU nodes API (jobs, bookings and policy live in their own modules)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import mixins, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api import plain
from portal.querysets import prebuilt
from scheduler.api.serializers import NodeSerializer
from scheduler.models import Gpu, Node
from scheduler.services.board import gpu_holders
from scheduler.services.inventory import outside_gpu_indices

# The GPU columns node_rows reads (GpuSerializer's fields and GpuTelemetrySerializer's).
_TELEMETRY = (
    "at",
    "utilization",
    "memory_used_mib",
    "memory_total_mib",
    "temperature_c",
    "power_w",
    "foreign_processes",
    "error",
)
_GPU_COLUMNS = (
    "node_id",
    "index",
    "uuid",
    "model",
    "memory_mb",
    "healthy",
    "present",
    "telemetry_state__id",
    *(f"telemetry_state__{name}" for name in _TELEMETRY),
)


@prebuilt
def gpu_row_values() -> Any:
    return Gpu.objects.order_by("index").values(*_GPU_COLUMNS)


def node_rows(nodes: list[Node], *, now: datetime) -> list[dict[str, Any]]:
    """`NodeSerializer(nodes, many=True, context={"now", "holders"}).data`, by hand.

    Each GPU used to be its own serializer (and its telemetry and holder two more), built
    per request: 8 nodes of 8 GPUs took 30 ms. One query reads the present GPUs of all the
    nodes as plain rows; the holders are computed only when there is a GPU. Same keys in the
    same order, same values (tests/scheduler/test_nodes_api_fast.py compares the two).
    """
    dt = plain.Datetimes()
    integer, floating = plain.integer, plain.floating
    gpus: dict[int, list[dict[str, Any]]] = {node.pk: [] for node in nodes}
    holders: dict[tuple[int, int], Any] = {}
    if gpus:
        rows = list(gpu_row_values().filter(node_id__in=list(gpus), present=True))
        if rows:
            holders = gpu_holders(now=now)
        for g in rows:
            holder = holders.get((g["node_id"], g["index"]))
            telemetry = None
            if g["telemetry_state__id"] is not None:
                at = g["telemetry_state__at"]
                telemetry = {
                    "at": dt(at),
                    "sample_age_s": float(round((now - at).total_seconds(), 1)),
                    "utilization_pct": floating(g["telemetry_state__utilization"]),
                    "memory_used_mib": floating(g["telemetry_state__memory_used_mib"]),
                    "memory_total_mib": floating(g["telemetry_state__memory_total_mib"]),
                    "temperature_c": floating(g["telemetry_state__temperature_c"]),
                    "power_w": floating(g["telemetry_state__power_w"]),
                    "foreign_processes": integer(g["telemetry_state__foreign_processes"]),
                    "error": g["telemetry_state__error"],
                }
            gpus[g["node_id"]].append(
                {
                    "index": integer(g["index"]),
                    "uuid": g["uuid"],
                    "model": g["model"],
                    "memory_mb": integer(g["memory_mb"]),
                    "healthy": plain.boolean(g["healthy"]),
                    "present": plain.boolean(g["present"]),
                    "held_by": None
                    if holder is None
                    else {
                        "kind": holder.kind,
                        "id": int(holder.id),
                        "user": str(holder.user),
                        "team": str(holder.team),
                        "until": dt(holder.until),
                    },
                    "outside_karimasu": False,
                    "telemetry": telemetry,
                }
            )
    for node in nodes:
        _mark_outside(node, gpus[node.pk], holders)
    return [
        {
            "name": node.name,
            "gpu_model": node.gpu_model,
            "gpu_memory_mb": integer(node.gpu_memory_mb),
            "gpu_capacity": integer(node.gpu_capacity),
            "gpu_allocatable": integer(node.gpu_allocatable),
            "cpu_allocatable_millis": integer(node.cpu_allocatable_millis),
            "memory_allocatable_mb": integer(node.memory_allocatable_mb),
            "ready": plain.boolean(node.ready),
            "cordoned": plain.boolean(node.cordoned),
            "schedulable": plain.boolean(node.schedulable),
            "taints": node.taints,
            "foreign_gpus": integer(node.foreign_gpus),
            "foreign_cpu_millis": integer(node.foreign_cpu_millis),
            "foreign_memory_mb": integer(node.foreign_memory_mb),
            "foreign_pods": node.foreign_pods,
            "daemon_cpu_millis": integer(node.daemon_cpu_millis),
            "daemon_memory_mb": integer(node.daemon_memory_mb),
            "gpu_allocation": node.gpu_allocation,
            "first_seen_at": dt(node.first_seen_at),
            "last_seen_at": dt(node.last_seen_at),
            "gone_at": dt(node.gone_at),
            "gpus": gpus[node.pk],
        }
        for node in nodes
    ]


def _mark_outside(
    node: Node, gpus: list[dict[str, Any]], holders: dict[tuple[int, int], Any]
) -> None:
    """``outside_karimasu`` as ``NodeSerializer`` decides it (``outside_gpu_indices``)."""
    held = {
        g["index"]
        for g in gpus
        if (h := holders.get((node.pk, g["index"]))) is not None and h.kind == "job"
    }
    outside = outside_gpu_indices(node, [g["index"] for g in gpus], held)
    for g in gpus:
        g["outside_karimasu"] = g["index"] in outside


class NodeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The GPU nodes, their GPUs, who holds each one and its latest telemetry (utilization,
    memory, health, sample age). Everyone signed in sees this: knowing who holds what is the
    point. `foreign_*` is what pods Karimasu did not create hold on the node (DaemonSets,
    other namespaces' pods): never offered to jobs; `outside_karimasu` marks as many GPUs.
    `?include_gone=1` adds nodes that left."""

    serializer_class = NodeSerializer  # the reference for node_rows and the OpenAPI schema
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    queryset = Node.objects.none()

    def get_queryset(self) -> Any:
        nodes = Node.objects.defer("labels")
        if self.request.query_params.get("include_gone") not in ("1", "true"):
            nodes = nodes.filter(gone_at__isnull=True)
        return nodes

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        nodes = self.get_queryset()
        page = self.paginate_queryset(nodes)
        if page is None:
            return Response(node_rows(list(nodes), now=timezone.now()))
        return self.get_paginated_response(node_rows(list(page), now=timezone.now()))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(node_rows([self.get_object()], now=timezone.now())[0])
