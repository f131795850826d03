from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduler.limits import MAX_BOOKING_HOURS, MAX_GPUS, MIN_BOOKING_HOURS
from scheduler.models import Gpu, MaintenanceWindow, Node, Reservation, TeamPolicy
from scheduler.services import webhooks
from scheduler.services.access import can_manage_reservation, can_see_purpose
from scheduler.services.inventory import outside_gpu_indices


class GpuHolderSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["job", "booking"])
    id = serializers.IntegerField()
    user = serializers.CharField()
    team = serializers.CharField()
    until = serializers.DateTimeField()


class GpuTelemetrySerializer(serializers.Serializer):
    """The latest reading of the node agent for one GPU (null fields: not supported)."""

    at = serializers.DateTimeField()
    sample_age_s = serializers.FloatField()
    utilization_pct = serializers.FloatField(source="utilization", allow_null=True)
    memory_used_mib = serializers.FloatField(allow_null=True)
    memory_total_mib = serializers.FloatField(allow_null=True)
    temperature_c = serializers.FloatField(allow_null=True)
    power_w = serializers.FloatField(allow_null=True)
    foreign_processes = serializers.IntegerField()
    error = serializers.CharField()


class GpuSerializer(serializers.ModelSerializer):
    held_by = serializers.SerializerMethodField()
    telemetry = serializers.SerializerMethodField()

    class Meta:
        model = Gpu
        fields = [
            "index",
            "uuid",
            "model",
            "memory_mb",
            "healthy",
            "present",
            "held_by",
            "outside_karimasu",
            "telemetry",
        ]

    outside_karimasu = serializers.SerializerMethodField(
        help_text="In use by a pod Karimasu did not create (never offered to jobs)."
    )

    def get_outside_karimasu(self, gpu: Gpu) -> bool:
        return (gpu.node_id, gpu.index) in self.context.get("outside", ())

    @extend_schema_field(GpuTelemetrySerializer(allow_null=True))
    def get_telemetry(self, gpu: Gpu) -> dict[str, Any] | None:
        state = getattr(gpu, "telemetry_state", None)
        if state is None:
            return None
        state.sample_age_s = round((self.context["now"] - state.at).total_seconds(), 1)
        return GpuTelemetrySerializer(state).data

    @extend_schema_field(GpuHolderSerializer(allow_null=True))
    def get_held_by(self, gpu: Gpu) -> dict[str, Any] | None:
        holder = self.context.get("holders", {}).get((gpu.node_id, gpu.index))
        return GpuHolderSerializer(holder).data if holder is not None else None


class NodeSerializer(serializers.ModelSerializer):
    gpus = serializers.SerializerMethodField()
    schedulable = serializers.BooleanField(read_only=True)
    gpu_allocation = serializers.ChoiceField(
        choices=["dra", "device-plugin"],
        read_only=True,
        help_text=(
            '"dra": a job gets exactly the GPUs it booked (a ResourceClaim for their UUIDs); '
            '"device-plugin": per count on the node, the cluster picks which GPUs.'
        ),
    )

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
            "foreign_gpus",
            "foreign_cpu_millis",
            "foreign_memory_mb",
            "foreign_pods",
            "daemon_cpu_millis",
            "daemon_memory_mb",
            "gpu_allocation",
            "first_seen_at",
            "last_seen_at",
            "gone_at",
            "gpus",
        ]

    @extend_schema_field(GpuSerializer(many=True))
    def get_gpus(self, node: Node) -> list[dict[str, Any]]:
        present = [g for g in node.gpus.all() if g.present]
        holders = self.context.get("holders", {})
        jobs = {
            g.index
            for g in present
            if (holder := holders.get((node.pk, g.index))) is not None and holder.kind == "job"
        }
        outside = {
            (node.pk, i) for i in outside_gpu_indices(node, [g.index for g in present], jobs)
        }
        context = {**self.context, "outside": outside}
        return GpuSerializer(present, many=True, context=context).data


# --- Reservations -------------------------------------------------------------------------


class ReservationSerializer(serializers.ModelSerializer):
    holder = serializers.CharField(source="holder.username", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True)
    node = serializers.CharField(source="node.name", read_only=True)
    gpu_model = serializers.CharField(source="node.gpu_model", read_only=True)
    gpus = serializers.SerializerMethodField()
    purpose = serializers.SerializerMethodField()
    can_manage = serializers.SerializerMethodField()

    class Meta:
        model = Reservation
        fields = [
            "id",
            "holder",
            "team",
            "node",
            "gpu_model",
            "gpus",
            "start",
            "end",
            "status",
            "purpose",
            "shared_with_team",
            "created_at",
            "ended_at",
            "idle_exempt",
            "idle_notice_at",
            "waste_gpu_hours",
            "can_manage",
        ]
        read_only_fields = fields

    def get_gpus(self, reservation: Reservation) -> list[int]:
        return sorted(s.gpu.index for s in reservation.slots.all())

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_purpose(self, reservation: Reservation) -> str | None:
        """Private to the holder's team (and admins): others see null."""
        user = self.context["request"].user
        return reservation.purpose if can_see_purpose(user, reservation) else None

    def get_can_manage(self, reservation: Reservation) -> bool:
        return can_manage_reservation(self.context["request"].user, reservation)


class ReservationCreateSerializer(serializers.Serializer):
    team = serializers.SlugField()
    node = serializers.CharField(max_length=253)
    gpus = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=63),
        min_length=1,
        max_length=16,
        help_text="GPU indices on the node.",
    )
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    purpose = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    shared_with_team = serializers.BooleanField(
        default=False,
        help_text="Exclusive (false, the default): the GPUs serve only your jobs. Shared: "
        "also your team's.",
    )


class ReservationChangeSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(_("Give a new start or end."))
        return attrs


class BorrowSerializer(serializers.Serializer):
    team = serializers.SlugField()
    gpus = serializers.IntegerField(min_value=1, max_value=MAX_GPUS)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    hours = serializers.FloatField(min_value=MIN_BOOKING_HOURS, max_value=MAX_BOOKING_HOURS)
    purpose = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    shared_with_team = serializers.BooleanField(
        default=False,
        help_text="Exclusive (false, the default): the GPUs serve only your jobs. Shared: "
        "also your team's.",
    )


class AvailabilityQuerySerializer(serializers.Serializer):
    gpus = serializers.IntegerField(min_value=1, max_value=MAX_GPUS, default=1)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    # `from` is a Python keyword: the view maps it.
    start = serializers.DateTimeField(required=False)
    to = serializers.DateTimeField(required=False)


class FreeSlotSerializer(serializers.Serializer):
    node = serializers.CharField()
    gpu_model = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    gpus = serializers.ListField(child=serializers.IntegerField())


@cache
def available_zones() -> frozenset[str]:
    return frozenset(available_timezones())


class TeamPolicySerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)

    class Meta:
        model = TeamPolicy
        fields = [
            "team",
            "max_booking_hours",
            "max_days_ahead",
            "max_gpus_per_user",
            "weekly_gpu_hours",
            "slack_webhook_url",
            "webhook_language",
            "notify_email",
            "time_zone",
        ]

    def validate_time_zone(self, value: str) -> str:
        if value and value not in available_zones():
            raise serializers.ValidationError(_("Unknown time zone."))
        return value

    def validate_slack_webhook_url(self, value: str) -> str:
        """https to public addresses only (or a host an admin allowed): see webhooks.check."""
        if value:
            try:
                webhooks.check(value)
            except webhooks.WebhookRefused as exc:
                raise serializers.ValidationError(str(exc)) from exc
        return value


class MaintenanceWindowSerializer(serializers.ModelSerializer):
    node = serializers.SlugRelatedField(
        slug_field="name", queryset=Node.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = MaintenanceWindow
        fields = ["id", "node", "start", "end", "reason"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": [_("Must be after start.")]})
        return attrs
