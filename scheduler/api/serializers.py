from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduler.models import Gpu, Node


class GpuHolderSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["job"])
    id = serializers.IntegerField()
    user = serializers.CharField()
    team = serializers.CharField()


class GpuSerializer(serializers.ModelSerializer):
    held_by = serializers.SerializerMethodField()

    class Meta:
        model = Gpu
        fields = ["index", "uuid", "model", "memory_mb", "healthy", "present", "held_by"]

    @extend_schema_field(GpuHolderSerializer(allow_null=True))
    def get_held_by(self, gpu: Gpu) -> dict[str, Any] | None:
        holders: dict[tuple[int, int], dict[str, Any]] = self.context.get("holders", {})
        return holders.get((gpu.node_id, gpu.index))


class NodeSerializer(serializers.ModelSerializer):
    gpus = serializers.SerializerMethodField()
    schedulable = serializers.BooleanField(read_only=True)

    class Meta:
        model = Node
        fields = [
            "name",
            "gpu_model",
            "gpu_memory_mb",
            "gpu_capacity",
            "gpu_allocatable",
            "cpu_allocatable_millis",
            "memory_allocatable_mb",
            "ready",
            "cordoned",
            "schedulable",
            "taints",
            "first_seen_at",
            "last_seen_at",
            "gone_at",
            "gpus",
        ]

    @extend_schema_field(GpuSerializer(many=True))
    def get_gpus(self, node: Node) -> list[dict[str, Any]]:
        present = [g for g in node.gpus.all() if g.present]
        return GpuSerializer(present, many=True, context=self.context).data
