"""Telemetry API: ingest (node token), GPU and job time series, the latest GPU readings."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nodeagent.batch import BatchError, parse_batch
from portal.errors import InvalidRequest, NotFoundError
from scheduler.models import Gpu
from scheduler.services.access import visible_jobs
from scheduler.telemetry import series, services
from scheduler.telemetry.api.authentication import IsNodeAgent, NodeTokenAuthentication


def now() -> datetime:
    """The portal's clock (a seam the tests set)."""
    return timezone.now()


def accepted_window(at: datetime) -> tuple[datetime, datetime]:
    """Readings older than the rollups are kept, or further ahead than the clock skew
    allowed, are refused: see docs/telemetry.md."""
    keep = timedelta(days=float(services.setting("KARIMASU_TELEMETRY_ROLLUP_RETENTION_DAYS", 90)))
    skew = timedelta(
        seconds=float(services.setting("KARIMASU_TELEMETRY_MAX_CLOCK_SKEW_SECONDS", 300))
    )
    return at - keep, at + skew


class IngestView(APIView):
    """POST a batch of readings from a node agent (see docs/telemetry.md for the format)."""

    authentication_classes = [NodeTokenAuthentication]
    permission_classes = [IsNodeAgent]
    throttle_classes: list = []  # one agent per node, every 10 s; the token is the gate

    @extend_schema(request=dict, responses={202: dict}, summary="Ingest node telemetry")
    def post(self, request: Request) -> Response:
        node = request.auth.node
        moment = now()
        earliest, latest = accepted_window(moment)
        try:
            batch = parse_batch(request.data, earliest=earliest, latest=latest)
        except BatchError as exc:
            raise InvalidRequest(_("Malformed telemetry batch."), details=exc.details) from exc
        if batch.get("node") not in (None, node.name):
            raise InvalidRequest(
                _("This token belongs to node %(node)r, not %(other)r.")
                % {"node": node.name, "other": batch["node"]},
                details={"node": _("Does not match the token's node.")},
            )
        result = services.ingest_batch(node, batch, now=moment)
        return Response(
            {
                "node": node.name,
                "readings": result.readings,
                "samples": result.samples,
                "unknown_gpus": result.unknown_gpus,
            },
            status=status.HTTP_202_ACCEPTED,
        )


def _when(request: Request, name: str, default: datetime) -> datetime:
    text = request.query_params.get(name)
    if not text:
        return default
    value = parse_datetime(text.replace(" ", "+"))
    if value is None or value.tzinfo is None:
        raise InvalidRequest(
            _("'%(name)s' must be an ISO 8601 time with a zone.") % {"name": name},
            details={name: _("Invalid time.")},
        )
    return value


class GpuUtilizationView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="ISO 8601, default an hour ago"),
            OpenApiParameter("to", str, description="ISO 8601, default now"),
            OpenApiParameter("step", int, description="seconds, default 60"),
        ],
        responses=dict,
        summary="Utilization time series of one GPU",
    )
    def get(self, request: Request, uuid: str) -> Response:
        gpu = Gpu.objects.select_related("node").filter(uuid=uuid).first()
        if not uuid or gpu is None:
            raise NotFoundError(_("No GPU with this UUID has reported."))
        now = timezone.now()
        end = _when(request, "to", now)
        start = _when(request, "from", end - timedelta(hours=1))
        try:
            step = int(request.query_params.get("step", 60))
        except ValueError:
            step = 0
        problems: dict[str, str] = {}
        if step < 1:
            problems["step"] = _("A positive whole number of seconds.")
        if start >= end:
            problems["from"] = _("Must be before 'to'.")
        elif step >= 1 and (end - start).total_seconds() / step > series.MAX_POINTS:
            problems["step"] = _("At most %(points)s points; use a larger step.") % {
                "points": series.MAX_POINTS
            }
        if problems:
            raise InvalidRequest(_("Invalid time series parameters."), details=problems)
        points = series.gpu_series(gpu, start=start, end=end, step=step)
        return Response(
            {
                "gpu": {"uuid": gpu.uuid, "node": gpu.node.name, "index": gpu.index},
                "from": start,
                "to": end,
                "step": step,
                "points": points,
            }
        )


class JobUtilizationView(APIView):
    @extend_schema(responses=dict, summary="Utilization summary and per-minute series of a job")
    def get(self, request: Request, job_id: int) -> Response:
        # Not 403 for others' jobs: whether the job exists is itself not for outsiders.
        job = visible_jobs(request.user).filter(pk=job_id).first()
        if job is None:
            raise NotFoundError(_("Job not found."))
        return Response(
            {
                "job": job.pk,
                "summary": series.job_summary(job),
                "points": series.job_series(job),
            }
        )


class GpuOverviewView(APIView):
    @extend_schema(responses=dict, summary="Every GPU with its latest reading")
    def get(self, request: Request) -> Response:
        rows: list[dict[str, Any]] = series.gpu_overview(now=timezone.now())
        return Response({"count": len(rows), "results": rows})
