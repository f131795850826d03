"""Interactive sessions API (docs/sessions.md): ``/api/v1/sessions/`` (list, start,
retrieve, stop, extend) and ``/api/v1/workspace-images/`` (what admins offer)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.errors import InvalidRequest
from scheduler.api.jobs import StoredMessageField
from scheduler.limits import MAX_GPUS
from scheduler.models import Session, WorkspaceImage
from scheduler.services import access, sessions


class WorkspaceImageSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = WorkspaceImage
        fields = ["name", "title", "kind", "image", "port"]
        read_only_fields = fields


class SessionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="job.team.slug", read_only=True)
    image = WorkspaceImageSerializer(source="workspace", read_only=True)
    state = serializers.SerializerMethodField()
    status = serializers.CharField(source="job.status", read_only=True)
    reason = serializers.CharField(source="job.reason", read_only=True)
    message = StoredMessageField(source="job.shown_message")
    node = serializers.SerializerMethodField()
    gpus = serializers.ListField(
        source="job.gpu_indices", child=serializers.IntegerField(), read_only=True
    )
    url = serializers.CharField(source="path", read_only=True)
    ends_at = serializers.SerializerMethodField()
    seconds_left = serializers.SerializerMethodField()
    started_at = serializers.DateTimeField(source="job.started_at", read_only=True, allow_null=True)
    on_demand = serializers.SerializerMethodField()
    preemptible = serializers.BooleanField(source="job.preemptible", read_only=True)
    queue_position = serializers.IntegerField(
        source="job.queue_position", read_only=True, allow_null=True
    )
    eta = serializers.DateTimeField(source="job.eta", read_only=True, allow_null=True)
    duration_s = serializers.IntegerField(source="job.max_runtime_s", read_only=True)

    class Meta:
        model = Session
        fields = [
            "id",
            "owner",
            "team",
            "image",
            "state",
            "status",
            "reason",
            "message",
            "node",
            "gpus",
            "job",
            "reservation",
            "on_demand",
            "preemptible",
            "queue_position",
            "eta",
            "duration_s",
            "url",
            "created_at",
            "started_at",
            "ends_at",
            "seconds_left",
            "stop_reason",
        ]
        read_only_fields = fields

    def get_state(self, obj: Session) -> str:
        return sessions.state(obj)

    def get_on_demand(self, obj: Session) -> bool:
        return obj.reservation_id is None

    def get_node(self, obj: Session) -> str | None:
        return obj.job.node.name if obj.job.node is not None else None

    def get_ends_at(self, obj: Session) -> str | None:
        end = sessions.ends_at(obj)
        return end.isoformat() if end is not None else None

    def get_seconds_left(self, obj: Session) -> int | None:
        end = sessions.ends_at(obj)
        if end is None or sessions.state(obj) == "stopped":
            return None
        return max(0, int((end - timezone.now()).total_seconds()))


class SessionCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """On a booking (``reservation``), or on demand (``team``, ``gpus``, optional
    ``gpu_model`` and ``hours``): queued like a job."""

    reservation = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    image = serializers.SlugField(max_length=50)
    team = serializers.SlugField(max_length=50, required=False)
    gpus = serializers.IntegerField(min_value=0, max_value=MAX_GPUS, required=False)
    gpu_model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    hours = serializers.FloatField(min_value=0.02, max_value=24 * 365, required=False)
    mounts = serializers.ListField(child=serializers.JSONField(), required=False, max_length=16)

    def validate_mounts(self, value: list[Any]) -> list[Any]:
        """Each a mount's name, or ``{"name": ..., "write": true|false}`` (as for jobs)."""
        for item in value:
            if isinstance(item, str) and 0 < len(item) <= 100:
                continue
            if (
                isinstance(item, dict)
                and set(item) <= {"name", "write"}
                and isinstance(item.get("name"), str)
                and 0 < len(item["name"]) <= 100
                and isinstance(item.get("write", False), bool)
            ):
                continue
            raise serializers.ValidationError(
                _('Each mount is a name or {"name": ..., "write": true|false}.')
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        on_demand = {"team", "gpus", "gpu_model", "hours"} & set(attrs)
        if "reservation" in attrs and on_demand:
            raise serializers.ValidationError(
                {name: [_("Not with a booking.")] for name in sorted(on_demand)}
            )
        if "reservation" not in attrs and "team" not in attrs:
            raise serializers.ValidationError(
                {
                    "reservation": [
                        _("Give a booking, or a team (and gpus) for a session on demand.")
                    ]
                }
            )
        return attrs


class ExtendSerializer(serializers.Serializer):  # type: ignore[type-arg]
    minutes = serializers.IntegerField(min_value=1, max_value=sessions.MAX_EXTEND_MINUTES)


class WorkspaceImageViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """The workspace images admins offer (enabled ones)."""

    serializer_class = WorkspaceImageSerializer
    queryset = WorkspaceImage.objects.filter(enabled=True)
    pagination_class = None


class SessionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Your sessions (team leads also see their teams', admins all). Start one on a
    booking you hold, or on demand (queued like a job); open it at its ``url``; stop it;
    extend it."""

    serializer_class = SessionSerializer
    queryset = Session.objects.none()

    def get_queryset(self) -> Any:
        rows = access.visible_sessions(self.request.user)
        if self.request.query_params.get("live") in ("1", "true"):
            rows = rows.filter(job__status__in=sessions.LIVE_JOB_STATUSES)
        return rows.order_by("-created_at", "-pk")

    def get_object(self) -> Session:
        return access.access_session(self.request.user, self.kwargs.get("pk"))

    @extend_schema(request=SessionCreateSerializer, responses={201: SessionSerializer})
    def create(self, request: Request) -> Response:
        form = SessionCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        workspace = WorkspaceImage.objects.filter(name=data["image"], enabled=True).first()
        if "reservation" not in data:
            if workspace is None:
                raise InvalidRequest(
                    _("No workspace image %(image)r.") % {"image": data["image"]},
                    details={"image": [_("Unknown.")]},
                )
            session = sessions.start_ondemand_session(
                request.user,  # type: ignore[arg-type]
                team=data["team"],
                workspace=workspace,
                gpus=data.get("gpus", 1),
                gpu_models=[data["gpu_model"]] if data.get("gpu_model") else [],
                hours=data.get("hours"),
                mounts=data.get("mounts") or [],
                now=timezone.now(),
            )
            return Response(self._data(session.pk), status=status.HTTP_201_CREATED)
        reservation = access.access_reservation(request.user, data["reservation"])
        if workspace is None:
            raise InvalidRequest(
                _("No workspace image %(image)r.") % {"image": data["image"]},
                details={"image": [_("Unknown.")]},
            )
        session = sessions.start_session(
            request.user,  # type: ignore[arg-type]
            reservation=reservation,
            workspace=workspace,
            mounts=data.get("mounts") or [],
            now=timezone.now(),
        )
        return Response(self._data(session.pk), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: SessionSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        session = access.access_session(request.user, pk, "manage")
        sessions.stop_session(request.user, session, now=timezone.now())  # type: ignore[arg-type]
        return Response(self._data(session.pk))

    @extend_schema(request=ExtendSerializer, responses={200: SessionSerializer})
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk: str | None = None) -> Response:
        session = access.access_session(request.user, pk, "manage")
        form = ExtendSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        sessions.extend_session(
            request.user,  # type: ignore[arg-type]
            session,
            minutes=form.validated_data["minutes"],
            now=timezone.now(),
        )
        return Response(self._data(session.pk))

    def _data(self, pk: int) -> dict[str, Any]:
        session = access.access_session(self.request.user, pk)
        return dict(SessionSerializer(session).data)
