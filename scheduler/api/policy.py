"""Admin endpoints for what the scheduler weighs: priority classes and team quotas."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler import messages
from scheduler.models import PriorityClass, TeamQuota
from scheduler.services.access import access_team
from scheduler.services.jobs import request_cycle


class IsAdminOrReadOnly(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.method in permissions.SAFE_METHODS or request.user.is_staff)


class PriorityClassSerializer(serializers.ModelSerializer):
    display_name = serializers.SerializerMethodField(
        help_text="The name for people, in the reader's language (the three default classes "
        "are translated; others read as their name)."
    )
    description_text = serializers.SerializerMethodField(
        help_text="The description in the reader's language where it is a default class's."
    )

    class Meta:
        model = PriorityClass
        fields = ["name", "display_name", "value", "description", "description_text", "is_default"]
        # A new default takes over (PriorityClass.save), not refused as "already exists".
        extra_kwargs: dict[str, dict[str, Any]] = {"is_default": {"validators": []}}

    def get_display_name(self, priority: PriorityClass) -> str:
        return messages.priority_label(priority.name)

    def get_description_text(self, priority: PriorityClass) -> str:
        return messages.priority_description(priority.description)


class PriorityClassViewSet(viewsets.ModelViewSet):
    """Priority classes: everyone reads, admins write. Higher values run first."""

    serializer_class = PriorityClassSerializer
    permission_classes = [permissions.IsAuthenticated, IsAdminOrReadOnly]
    queryset = PriorityClass.objects.all()
    lookup_field = "name"

    def perform_create(self, serializer: Any) -> None:
        self._save(serializer)

    def perform_update(self, serializer: Any) -> None:
        self._save(serializer)

    @staticmethod
    def _save(serializer: Any) -> None:
        serializer.save()  # a new default takes over from the old (PriorityClass.save)
        request_cycle()


class TeamQuotaSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)

    class Meta:
        model = TeamQuota
        fields = [
            "team",
            "guaranteed_gpus",
            "borrowing_allowed",
            "borrowing_limit",
            "share_weight",
            "user_gpu_cap",
        ]

    def validate_share_weight(self, value: float) -> float:
        if value <= 0:
            raise serializers.ValidationError(_("Must be positive."))
        return value


class TeamQuotaView(APIView):
    """A team's quota: its members read it, admins change it (guaranteed GPUs are a
    cluster-wide promise, so leads cannot raise their own)."""

    @extend_schema(responses=TeamQuotaSerializer)
    def get(self, request: Request, slug: str) -> Response:
        team = access_team(request.user, slug, "view_quota")
        quota, _created = TeamQuota.objects.get_or_create(team=team)
        return Response(TeamQuotaSerializer(quota).data)

    @extend_schema(request=TeamQuotaSerializer, responses=TeamQuotaSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        team = access_team(request.user, slug, "change_quota")
        quota, _created = TeamQuota.objects.get_or_create(team=team)
        form = TeamQuotaSerializer(quota, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        form.save()
        request_cycle()
        return Response(form.data)
