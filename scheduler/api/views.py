"""Scheduler API views. Reads only here so far; writes arrive with the job queue."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from rest_framework import mixins, viewsets

from scheduler import states
from scheduler.api.serializers import NodeSerializer
from scheduler.models import Gpu, Job, Node


class NodeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The GPU nodes, their GPUs and who holds each one. Everyone signed in sees this:
    knowing who holds what is the point. `?include_gone=1` adds nodes that left."""

    serializer_class = NodeSerializer
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    queryset = Node.objects.none()

    def get_queryset(self) -> Any:
        nodes = Node.objects.prefetch_related(
            Prefetch("gpus", queryset=Gpu.objects.order_by("index"))
        )
        if self.request.query_params.get("include_gone") not in ("1", "true"):
            nodes = nodes.filter(gone_at__isnull=True)
        return nodes

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        holders = {}
        running = Job.objects.filter(status__in=states.ON_CLUSTER, node__isnull=False).values(
            "pk", "node_id", "gpu_indices", "owner__username", "team__slug"
        )
        for job in running:
            for index in job["gpu_indices"] or []:
                holders[(job["node_id"], index)] = {
                    "kind": "job",
                    "id": job["pk"],
                    "user": job["owner__username"],
                    "team": job["team__slug"],
                }
        context["holders"] = holders
        return context
