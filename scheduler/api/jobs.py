"""Job queue API: submit, list, detail (with why it waits and when it may start), cancel,
logs; sweeps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Func, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api import plain
from portal.errors import Conflict, NotFoundError
from portal.querysets import prebuilt
from portal.streaming import StreamingResponse
from scheduler import messages, states
from scheduler.cluster.backend import ClusterError
from scheduler.cluster.factory import cluster_backend
from scheduler.limits import MAX_GPUS
from scheduler.models import Job, JobEvent, QueueLine, QueueOrder, Sweep, waiting_message
from scheduler.services import job_logs, submission
from scheduler.services.access import visible_jobs


class StoredMessageField(serializers.CharField):
    """A message the scheduler stored in English, in the reader's language
    (``scheduler.messages``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> str:
        return str(messages.render(super().to_representation(value)))


class JobEventSerializer(serializers.ModelSerializer):
    message = StoredMessageField()

    class Meta:
        model = JobEvent
        fields = ["at", "from_status", "to_status", "reason", "message", "attempt"]


class JobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True)
    node = serializers.CharField(source="node.name", read_only=True, allow_null=True)
    sweep = serializers.IntegerField(source="sweep_id", read_only=True, allow_null=True)
    message = StoredMessageField(source="shown_message")
    queue_position = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="1-based place among the waiting jobs in rank order as of the last "
        "scheduling cycle; null when not queued, or queued since.",
    )
    placements = serializers.SerializerMethodField(
        help_text="Every rank's node and GPU indices, rank 0 first (one for a single-node "
        "job; empty before it is placed)."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "owner",
            "team",
            "image",
            "command",
            "args",
            "env",
            "gpus",
            "nodes",
            "gpu_models",
            "cpu_millis",
            "memory_mb",
            "max_runtime_s",
            "priority_class",
            "preemptible",
            "mounts",
            "secret_env",
            "status",
            "reason",
            "message",
            "attempt",
            "queue_position",
            "eta",
            "node",
            "gpu_indices",
            "placements",
            "borrowed",
            "exit_code",
            "submitted_at",
            "admitted_at",
            "started_at",
            "finished_at",
            "sweep",
            "sweep_params",
        ]
        read_only_fields = fields

    def get_placements(self, job: Job) -> list[dict[str, Any]]:
        return placements_of(job.placements, job.node.name if job.node else None, job.gpu_indices)


def placements_of(
    stored: list[dict[str, Any]], node: str | None, gpu_indices: list[int]
) -> list[dict[str, Any]]:
    """The API's ``placements``: a gang's stored list, else the one pod of a placed job."""
    if stored:
        return [{"node": p["node"], "gpu_indices": p["gpu_indices"]} for p in stored]
    return [{"node": node, "gpu_indices": gpu_indices}] if node else []


# JobSerializer's JSON fields, read as one JSON array per row (JsonColumns).
_JOB_JSON = (
    "command",
    "args",
    "env",
    "gpu_models",
    "mounts",
    "secret_env",
    "gpu_indices",
    "sweep_params",
    "placements",
)
# The other columns `job_rows` reads: JobSerializer's fields, by their sources.
_JOB_COLUMNS = (
    *(
        f
        for f in JobSerializer.Meta.fields
        if f not in ("owner", "team", "node", "sweep", "queue_position", *_JOB_JSON)
    ),
    "owner__username",
    "team__slug",
    "node__name",
    "sweep_id",
)


class JsonColumns(Func):
    """Several JSON columns of a row as one JSON array: one decode per row instead of one
    per column (eight JSON columns were a fifth of the jobs list). The values are the
    columns' own: an array of the stored JSON, parsed once."""

    function = "jsonb_build_array"
    output_field = models.JSONField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        clone = self.copy()
        clone.set_source_expressions(
            [Func(e, function="json") for e in self.get_source_expressions()]
        )
        return clone.as_sql(compiler, connection, function="json_array", **extra)


@prebuilt
def job_row_values() -> QuerySet[Any]:
    """Every job as the rows `job_rows` turns into JobSerializer's output (filter it)."""
    rows: QuerySet[Any] = Job.objects.annotate(_json=JsonColumns(*_JOB_JSON)).values(
        *_JOB_COLUMNS, "_json"
    )
    return rows


def job_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """`JobSerializer(many=True).data` for rows of `job_row_values`, by hand.

    The list is the notebooks' hot path: model instances and the serializer's per-field
    calls were most of the request. Same keys in the same order, same values
    (tests/scheduler/test_jobs_api_fast.py compares the rendered JSON). The database
    driver already returns the NOT NULL integer and boolean columns as int and bool (what
    DRF's fields would turn them into); nullable ones and datetimes go through `plain`.
    """
    dt = plain.Datetimes()
    integer = plain.integer
    out = []
    render = messages.renderer()
    places: QueueLine | None = None
    for r in rows:
        place = None
        if r["status"] == states.QUEUED:
            if places is None:
                places = QueueOrder.places()  # read once, when a queued job is listed
            place = places.get(r["id"])
        (
            command, args, env, gpu_models, mounts, secret_env, gpu_indices, sweep_params,
            placements,
        ) = r["_json"]  # fmt: skip
        out.append(
            {
                "id": r["id"],
                "name": r["name"],
                "owner": r["owner__username"],
                "team": r["team__slug"],
                "image": r["image"],
                "command": command,
                "args": args,
                "env": env,
                "gpus": r["gpus"],
                "nodes": r["nodes"],
                "gpu_models": gpu_models,
                "cpu_millis": r["cpu_millis"],
                "memory_mb": r["memory_mb"],
                "max_runtime_s": r["max_runtime_s"],
                "priority_class": r["priority_class"],
                "preemptible": r["preemptible"],
                "mounts": mounts,
                "secret_env": secret_env,
                "status": r["status"],
                "reason": r["reason"],
                "message": render(waiting_message(r["reason"], r["message"], place)),
                "attempt": r["attempt"],
                "queue_position": place.position if place is not None else None,
                "eta": dt(r["eta"]),
                "node": r["node__name"],
                "gpu_indices": gpu_indices,
                "placements": placements_of(placements, r["node__name"], gpu_indices),
                "borrowed": r["borrowed"],
                "exit_code": integer(r["exit_code"]),
                "submitted_at": dt(r["submitted_at"]),
                "admitted_at": dt(r["admitted_at"]),
                "started_at": dt(r["started_at"]),
                "finished_at": dt(r["finished_at"]),
                "sweep": r["sweep_id"],
                "sweep_params": sweep_params,
            }
        )
    return out


class JobDetailSerializer(JobSerializer):
    events = JobEventSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "events"]
        read_only_fields = fields


class JobRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    team = serializers.SlugField()
    image = serializers.CharField(max_length=500)
    command = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    args = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    env = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict
    )
    gpus = serializers.IntegerField(
        min_value=0, max_value=MAX_GPUS, default=1, help_text="GPUs per node."
    )
    nodes = serializers.IntegerField(
        min_value=1,
        default=1,
        help_text="Nodes to run on (a multi-node job: one pod of `gpus` GPUs on each, "
        "started all together or not at all). At most KARIMASU_MAX_JOB_NODES.",
    )
    gpu_models = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    cpu_millis = serializers.IntegerField(min_value=100, default=1000)
    memory_mb = serializers.IntegerField(min_value=64, default=4096)
    max_runtime_s = serializers.IntegerField(min_value=1)
    priority_class = serializers.CharField(required=False, allow_blank=True, default="")
    preemptible = serializers.BooleanField(default=True)
    mounts = serializers.ListField(required=False, default=list)
    annotations = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    secrets = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        default=dict,
        help_text='{"VAR": "named-secret/key"}: read from a Secret an admin named for your team.',
    )


class SweepRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    template = JobRequestSerializer()
    parameters = serializers.DictField(help_text='{"grid": {...}} or {"list": [...]}')
    parallelism = serializers.IntegerField(min_value=1, required=False, allow_null=True)


class SweepSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True)
    status = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Sweep
        fields = [
            "id",
            "name",
            "owner",
            "team",
            "parameters",
            "parallelism",
            "created_at",
            "status",
            "counts",
        ]
        read_only_fields = fields

    def get_counts(self, sweep: Sweep) -> dict[str, int]:
        return dict(Counter(j.status for j in sweep.jobs.all()))

    def get_status(self, sweep: Sweep) -> str:
        return submission.sweep_status(self.get_counts(sweep))


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training jobs. Filters: `?status=queued,running`, `?team=`, `?mine=1`, `?sweep=`."""

    queryset = Job.objects.none()

    def get_serializer_class(self) -> Any:
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    def get_queryset(self) -> Any:
        jobs = self.filter_jobs(Job.objects.select_related("owner", "team", "node"))
        if self.action == "retrieve":
            jobs = jobs.prefetch_related("events")
        return jobs

    def filter_jobs(self, jobs: QuerySet[Any]) -> QuerySet[Any]:
        """`jobs` restricted to those the user may see and the query asks for, in order."""
        jobs = visible_jobs(self.request.user, jobs)
        params = self.request.query_params
        if params.get("status"):
            jobs = jobs.filter(status__in=params["status"].split(","))
        if params.get("team"):
            jobs = jobs.filter(team__slug=params["team"])
        if params.get("mine") in ("1", "true"):
            jobs = jobs.filter(owner=self.request.user)
        if params.get("sweep"):
            jobs = jobs.filter(sweep_id=params["sweep"])
        return jobs.order_by("-submitted_at", "-pk")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # JobSerializer's output built from plain rows (job_rows): same page, same JSON.
        rows = self.filter_jobs(job_row_values())

        def count() -> int:  # only when the page is full; without the joins the rows need
            return int(self.filter_jobs(Job.objects.all()).count())

        counted: Any = plain.CountedRows(count, rows)  # a sliceable, countable row source
        page: list[dict[str, Any]] | None = self.paginate_queryset(counted)
        if page is None:
            return Response(job_rows(rows))
        return self.get_paginated_response(job_rows(page))

    @extend_schema(request=JobRequestSerializer, responses={201: JobSerializer})
    def create(self, request: Request) -> Response:
        form = JobRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        job = submission.submit_job(
            request.user, submission.JobRequest(**form.validated_data), now=timezone.now()
        )
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=JobSerializer, summary="Cancel a job")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = submission.cancel_job(request.user, self.get_object(), now=timezone.now())
        return Response(JobSerializer(job).data)

    @extend_schema(
        parameters=[OpenApiParameter("tail", int), OpenApiParameter("follow", bool)],
        responses={(200, "text/plain"): str},
        summary="The job's log (plain text)",
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str | None = None) -> StreamingResponse:
        job = self.get_object()
        if job.status == states.QUEUED:
            raise Conflict(_("The job has not started yet: no log."), code="no_log")
        try:
            tail = int(request.query_params.get("tail", "500"))
        except ValueError:
            tail = 500
        tail = max(1, min(tail, 100_000))
        follow = request.query_params.get("follow") in ("1", "true")
        archived = job_logs.read_archive(job, job.attempt, tail)
        if archived is not None:  # the attempt is over: its log was archived
            return StreamingResponse(
                (f"{line}\n" for line in archived), content_type="text/plain; charset=utf-8"
            )
        window = float(settings.KARIMASU_LOG_FOLLOW_SECONDS)
        try:
            lines = cluster_backend().logs(
                job.pk, job.attempt, tail_lines=tail, follow=follow, read_timeout_s=window
            )
        except ClusterError as exc:
            raise NotFoundError(
                _("The log is not available: %(why)s") % {"why": exc}, code="log_unavailable"
            ) from exc
        if follow:  # at most one follow window per request: ask again to go on
            lines = job_logs.bounded(lines, window)
        response = StreamingResponse(
            (f"{line}\n" for line in lines), content_type="text/plain; charset=utf-8"
        )
        if follow:
            response["X-Karimasu-Follow-Seconds"] = f"{window:g}"
        return response


class SweepViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Parameter sweeps: N jobs from one template, at most `parallelism` running at once."""

    serializer_class = SweepSerializer
    queryset = Sweep.objects.none()

    def get_queryset(self) -> Any:
        sweeps = Sweep.objects.select_related("owner", "team").prefetch_related("jobs")
        user = self.request.user
        if not user.is_staff:
            sweeps = sweeps.filter(Q(owner=user) | Q(team__memberships__user=user)).distinct()
        return sweeps

    @extend_schema(request=SweepRequestSerializer, responses={201: SweepSerializer})
    def create(self, request: Request) -> Response:
        form = SweepRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        sweep = submission.submit_sweep(
            request.user,
            submission.JobRequest(**data["template"]),
            name=data["name"],
            parameters=data["parameters"],
            parallelism=data.get("parallelism"),
            now=timezone.now(),
        )
        sweep = self.get_queryset().get(pk=sweep.pk)
        return Response(SweepSerializer(sweep).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=SweepSerializer, summary="Cancel every job left")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        sweep = get_object_or_404(self.get_queryset(), pk=pk)
        submission.cancel_sweep(request.user, sweep, now=timezone.now())
        return Response(SweepSerializer(self.get_queryset().get(pk=sweep.pk)).data)
