"""Pipelines, their runs and steps, and datasets with their versions and lineage.

`PipelineRun.status` and `StepRun.status` change only through `pipelines.services.runs`
(``pipelines/states.py`` says which moves are allowed)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pipelines import states
from portal.accounts.models import Team
from portal.phrases import render


class Overlap(models.TextChoices):
    SKIP = "skip", "skip"
    QUEUE = "queue", "queue"


class Pipeline(models.Model):
    name = models.SlugField(max_length=63)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="pipelines")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pipelines"
    )
    description = models.CharField(max_length=500, blank=True)
    definition = models.JSONField()
    schedule = models.CharField(max_length=100, blank=True)  # cron, five fields, in UTC
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.SKIP)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="pipeline_team_name_unique")
        ]
        ordering = ["team__slug", "name"]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class PipelineRun(models.Model):
    class Trigger(models.TextChoices):
        MANUAL = "manual", "manual"
        SCHEDULE = "schedule", "schedule"

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField()
    definition = models.JSONField()  # as it was when the run started
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.MANUAL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pipeline_runs"
    )
    status = models.CharField(
        max_length=12, choices=[(s, s) for s in states.RUN_STATES], default=states.QUEUED
    )
    message = models.CharField(max_length=1000, blank=True)
    # The message's msgid and params (portal.phrases): shown in the reader's language.
    message_data = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_run_number")
        ]
        indexes = [models.Index(fields=["status"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.pipeline} #{self.number}"

    @property
    def shown_message(self) -> str:
        """``message`` in the reader's (the active) language."""
        return render(self.message, self.message_data)


class StepRun(models.Model):
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=63)
    kind = models.CharField(max_length=12)
    position = models.PositiveSmallIntegerField()  # in the definition's run order
    status = models.CharField(
        max_length=12, choices=[(s, s) for s in states.STEP_STATES], default=states.PENDING
    )
    attempt = models.PositiveSmallIntegerField(default=0)
    cache_key = models.CharField(max_length=64, blank=True)
    # What the current attempt launched: set in the transaction that creates it, so a crash
    # can never launch a step twice.
    query = models.ForeignKey(
        "querygate.Query", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(
        "scheduler.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    output = models.ForeignKey(
        "pipelines.DatasetVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    message = models.CharField(max_length=1000, blank=True)
    # The message's msgid and params (portal.phrases): shown in the reader's language.
    message_data = models.JSONField(default=dict, blank=True)

    history = models.JSONField(default=list, blank=True)  # one entry per finished attempt
    retry_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    gpu_hours = models.FloatField(default=0)
    bytes_scanned = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="step_run_name")]
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return f"{self.run} {self.name}"

    @property
    def shown_message(self) -> str:
        """``message`` in the reader's (the active) language."""
        return render(self.message, self.message_data)


class Dataset(models.Model):
    name = models.SlugField(max_length=63)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="datasets")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets"
    )
    description = models.CharField(max_length=500, blank=True)
    retention_days = models.PositiveIntegerField(default=30)  # for versions but the newest
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="dataset_team_name_unique")
        ]
        ordering = ["team__slug", "name"]

    def __str__(self) -> str:
        return f"{self.team.slug}.{self.name}"


class DatasetVersion(models.Model):
    """One immutable output. Its directory is renamed into place before this row commits,
    so a version that exists is whole; a directory without a row is debris, purged."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    path = models.CharField(max_length=500)  # relative to PIPELINES_DATASETS_DIR
    format = models.CharField(max_length=12, default="parquet")  # parquet or files
    schema = models.JSONField(default=list, blank=True)  # [{"name", "type"}]
    row_count = models.BigIntegerField(null=True, blank=True)
    bytes = models.BigIntegerField(default=0)
    files = models.PositiveIntegerField(default=0)
    cache_key = models.CharField(max_length=64, db_index=True)
    produced_by = models.ForeignKey(
        StepRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    query = models.ForeignKey(
        "querygate.Query", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(
        "scheduler.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    inputs = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="used_by")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="dataset_version_unique")
        ]
        ordering = ["dataset", "-version"]

    def __str__(self) -> str:
        return f"{self.dataset} v{self.version}"
