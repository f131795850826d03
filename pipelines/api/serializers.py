"""Pipelines API shapes."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from pipelines.models import Dataset, DatasetVersion, Overlap, Pipeline, PipelineRun, StepRun
from portal.phrases import render


class PipelineWriteSerializer(serializers.Serializer[Any]):
    name = serializers.SlugField(max_length=63)
    team = serializers.SlugField(max_length=50)
    description = serializers.CharField(
        max_length=500, required=False, default="", allow_blank=True
    )
    definition = serializers.JSONField()
    schedule = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    overlap = serializers.ChoiceField(choices=Overlap.choices, required=False, default="skip")


def _shown_attempt(entry: Any) -> Any:
    if not isinstance(entry, dict) or not isinstance(entry.get("message"), str):
        return entry
    shown = {k: v for k, v in entry.items() if k != "message_data"}
    shown["message"] = render(entry["message"], entry.get("message_data"))
    return shown


class StepRunSerializer(serializers.ModelSerializer[StepRun]):
    output = serializers.SerializerMethodField()

    class Meta:
        model = StepRun
        fields = [
            "name", "kind", "status", "attempt", "message", "cache_key", "query", "job",
            "output", "history", "retry_at", "started_at", "finished_at", "gpu_hours",
            "bytes_scanned",
        ]  # fmt: skip

    def to_representation(self, instance: StepRun) -> dict[str, Any]:
        """The stored messages (the step's, each attempt's) in the reader's language."""
        data: dict[str, Any] = super().to_representation(instance)
        data["message"] = instance.shown_message
        history = data.get("history")
        if isinstance(history, list):
            data["history"] = [_shown_attempt(entry) for entry in history]
        return data

    def get_output(self, row: StepRun) -> dict[str, Any] | None:
        version = row.output
        if version is None:
            return None
        return {
            "dataset": version.dataset.name,
            "version": version.version,
            "rows": version.row_count,
            "id": version.pk,
        }


class PipelineRunSerializer(serializers.ModelSerializer[PipelineRun]):
    steps = StepRunSerializer(many=True, read_only=True)
    pipeline = serializers.CharField(source="pipeline.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    gpu_hours = serializers.SerializerMethodField()
    bytes_scanned = serializers.SerializerMethodField()

    class Meta:
        model = PipelineRun
        fields = [
            "id", "pipeline", "number", "status", "trigger", "message", "created_by",
            "created_at", "started_at", "finished_at", "gpu_hours", "bytes_scanned", "steps",
        ]  # fmt: skip

    def to_representation(self, instance: PipelineRun) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        data["message"] = instance.shown_message
        return data

    def get_gpu_hours(self, run: PipelineRun) -> float:
        return round(sum(s.gpu_hours for s in run.steps.all()), 4)

    def get_bytes_scanned(self, run: PipelineRun) -> int:
        return sum(s.bytes_scanned for s in run.steps.all())


class PipelineSerializer(serializers.ModelSerializer[Pipeline]):
    team = serializers.CharField(source="team.slug", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Pipeline
        fields = [
            "id", "name", "team", "owner", "description", "definition", "schedule", "overlap",
            "enabled", "next_run_at", "created_at", "updated_at",
        ]  # fmt: skip


class DatasetVersionSerializer(serializers.ModelSerializer[DatasetVersion]):
    class Meta:
        model = DatasetVersion
        fields = [
            "id", "version", "format", "schema", "row_count", "bytes", "files", "cache_key",
            "query", "job", "created_at", "expires_at",
        ]  # fmt: skip


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    team = serializers.CharField(source="team.slug", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    latest = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = ["id", "name", "team", "owner", "description", "retention_days", "latest"]

    def get_latest(self, dataset: Dataset) -> dict[str, Any] | None:
        version = dataset.versions.order_by("-version").first()
        return DatasetVersionSerializer(version).data if version else None
