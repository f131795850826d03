"""The GPU nodes API (jobs, bookings and policy live in their own modules)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from rest_framework import mixins, viewsets

from scheduler.api.serializers import NodeSerializer
from scheduler.models import Gpu, Node
from scheduler.services.board import gpu_holders


class NodeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The GPU nodes, their GPUs, who holds each one and its latest telemetry (utilization,
    memory, health, sample age). Everyone signed in sees this: knowing who holds what is the
    point. `foreign_*` is what pods Karimasu did not create hold on the node (DaemonSets,
    other namespaces' pods): never offered to jobs; `outside_karimasu` marks as many GPUs.
    `?include_gone=1` adds nodes that left."""

    serializer_class = NodeSerializer
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    queryset = Node.objects.none()

    def get_queryset(self) -> Any:
        nodes = Node.objects.prefetch_related(
            Prefetch(
                "gpus", queryset=Gpu.objects.select_related("telemetry_state").order_by("index")
            )
        )
        if self.request.query_params.get("include_gone") not in ("1", "true"):
            nodes = nodes.filter(gone_at__isnull=True)
        return nodes

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["now"] = timezone.now()
        now = context["now"]
        # Computed on first use: a page without GPUs (or a 404) needs no holder queries.
        context["holders"] = SimpleLazyObject(lambda: gpu_holders(now=now))
        return context
