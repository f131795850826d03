"""Pipelines API: define (JSON), run, watch, cancel and resume pipelines; datasets and their
lineage."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api import serializers as s
from pipelines.models import DatasetVersion, Pipeline, PipelineRun
from pipelines.services import datasets, runs
from pipelines.services.access import (
    access_pipeline,
    visible_datasets,
    visible_pipelines,
)
from portal.api.parsers import BoundedJSONParser, BoundedYAMLParser
from portal.errors import NotFoundError


class PipelineViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Any]
):
    """Pipelines of the user's teams. POST creates or replaces one by (team, name)."""

    serializer_class = s.PipelineSerializer
    queryset = Pipeline.objects.none()
    # The definition is a document people write: JSON or YAML (Content-Type: application/yaml).
    parser_classes = [BoundedJSONParser, BoundedYAMLParser]

    def get_queryset(self) -> Any:
        return visible_pipelines(self.request.user).order_by("team__slug", "name")

    def get_object(self) -> Pipeline:
        return access_pipeline(self.request.user, self.kwargs["pk"])

    @extend_schema(request=s.PipelineWriteSerializer, responses={201: s.PipelineSerializer})
    def create(self, request: Request) -> Response:
        data = s.PipelineWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        pipeline = runs.save_pipeline(
            request.user,
            team_slug=v["team"],
            name=v["name"],
            definition=v["definition"],
            schedule=v["schedule"],
            overlap=v["overlap"],
            description=v["description"],
            now=timezone.now(),
        )
        return Response(s.PipelineSerializer(pipeline).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: s.PipelineRunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        pipeline = access_pipeline(request.user, pk, "run")
        created = runs.start_run(request.user, pipeline, now=timezone.now())
        return Response(s.PipelineRunSerializer(created).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.PipelineRunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, pk: str | None = None) -> Response:
        pipeline = self.get_object()
        page = self.paginate_queryset(pipeline.runs.prefetch_related("steps").order_by("-number"))
        return self.get_paginated_response(s.PipelineRunSerializer(page, many=True).data)


class PipelineRunViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet[Any]):
    serializer_class = s.PipelineRunSerializer
    queryset = PipelineRun.objects.none()

    def get_object(self) -> PipelineRun:
        run = PipelineRun.objects.filter(pk=_int(self.kwargs["pk"])).first()
        if run is None:
            raise NotFoundError(_("No pipeline run %(id)s.") % {"id": self.kwargs["pk"]})
        access_pipeline(self.request.user, run.pipeline_id)
        return run

    @extend_schema(request=None, responses=s.PipelineRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = runs.cancel_run(request.user, self.get_object(), now=timezone.now())
        return Response(s.PipelineRunSerializer(run).data)

    @extend_schema(request=None, responses=s.PipelineRunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        run = runs.resume_run(request.user, self.get_object(), now=timezone.now())
        return Response(s.PipelineRunSerializer(run).data)


class DatasetViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Any]
):
    serializer_class = s.DatasetSerializer
    queryset = DatasetVersion.objects.none()

    def get_queryset(self) -> Any:
        return visible_datasets(self.request.user).order_by("team__slug", "name")

    @extend_schema(responses=s.DatasetVersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        dataset = self.get_object()
        return Response(s.DatasetVersionSerializer(dataset.versions.all(), many=True).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def lineage(self, request: Request, pk: str | None = None) -> Response:
        dataset = self.get_object()
        version = dataset.versions.order_by("-version").first()
        wanted = request.query_params.get("version")
        if wanted is not None:
            version = dataset.versions.filter(version=_int(wanted)).first()
        if version is None:
            raise NotFoundError(_("No such version of %(dataset)s.") % {"dataset": dataset.name})
        return Response(datasets.lineage(version))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFoundError(_("No object %(value)s.") % {"value": value}) from None
