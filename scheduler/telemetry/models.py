"""Telemetry rows: node tokens, raw samples, one-minute rollups, latest state, job summaries.

- `NodeToken`: a per-node credential that can only post telemetry (sha256 digest stored).
- `GpuSample`: one GPU at one reading, kept `KARIMASU_TELEMETRY_RAW_RETENTION_HOURS` (24).
- `GpuMinute`: per GPU per minute (sums, so a minute fed by several batches merges), kept
  `KARIMASU_TELEMETRY_ROLLUP_RETENTION_DAYS` (90).
- `GpuState` / `NodeAgentState`: the latest reading per GPU / node (for lists and the detectors).
- `JobUtilization`: the per-job summary (mean and p95 utilization, mean memory, idle
  fraction, GPU-hours), kept with the job, updated at every ingest; a utilization histogram
  of 101 one-percent bins makes the p95 incremental.
"""

from __future__ import annotations

from django.db import models

from scheduler.models import Gpu, Job, Node


class NodeToken(models.Model):
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="telemetry_tokens")
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["node__name", "-created_at"]

    def __str__(self) -> str:
        return f"{self.node.name} ({self.prefix}…)"


class GpuSample(models.Model):
    gpu = models.ForeignKey(Gpu, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    healthy = models.BooleanField(default=True)
    utilization = models.FloatField(null=True, blank=True)  # percent
    memory_utilization = models.FloatField(null=True, blank=True)
    memory_used_mib = models.FloatField(null=True, blank=True)
    memory_total_mib = models.FloatField(null=True, blank=True)
    temperature_c = models.FloatField(null=True, blank=True)
    power_w = models.FloatField(null=True, blank=True)
    power_limit_w = models.FloatField(null=True, blank=True)
    ecc_uncorrected = models.IntegerField(null=True, blank=True)
    throttle_reasons = models.JSONField(null=True, blank=True)
    processes = models.JSONField(null=True, blank=True)
    foreign_processes = models.PositiveSmallIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["gpu", "at"]),
            models.Index(fields=["at"]),
            models.Index(fields=["job", "at"]),
        ]

    def __str__(self) -> str:
        return f"gpu {self.gpu_id} at {self.at:%H:%M:%S}"


class GpuMinute(models.Model):
    gpu = models.ForeignKey(Gpu, on_delete=models.CASCADE, related_name="minutes")
    minute = models.DateTimeField()  # start of the minute, UTC
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    samples = models.PositiveIntegerField(default=0)
    utilization_samples = models.PositiveIntegerField(default=0)  # non-null utilization
    utilization_sum = models.FloatField(default=0.0)
    utilization_max = models.FloatField(null=True, blank=True)
    memory_samples = models.PositiveIntegerField(default=0)
    memory_used_sum = models.FloatField(default=0.0)
    idle_samples = models.PositiveIntegerField(default=0)
    unhealthy_samples = models.PositiveIntegerField(default=0)
    foreign_samples = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["gpu", "minute"]
        constraints = [
            models.UniqueConstraint(fields=["gpu", "minute"], name="gpuminute_unique_gpu_minute")
        ]
        indexes = [models.Index(fields=["minute"]), models.Index(fields=["job", "minute"])]

    def __str__(self) -> str:
        return f"gpu {self.gpu_id} minute {self.minute:%Y-%m-%d %H:%M}"

    @property
    def utilization_mean(self) -> float | None:
        n = self.utilization_samples
        return self.utilization_sum / n if n else None

    @property
    def memory_used_mean(self) -> float | None:
        n = self.memory_samples
        return self.memory_used_sum / n if n else None


class GpuState(models.Model):
    gpu = models.OneToOneField(Gpu, on_delete=models.CASCADE, related_name="telemetry_state")
    at = models.DateTimeField()
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    healthy = models.BooleanField(default=True)
    error = models.CharField(max_length=500, blank=True)
    utilization = models.FloatField(null=True, blank=True)
    memory_used_mib = models.FloatField(null=True, blank=True)
    memory_total_mib = models.FloatField(null=True, blank=True)
    temperature_c = models.FloatField(null=True, blank=True)
    power_w = models.FloatField(null=True, blank=True)
    foreign_processes = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"latest of gpu {self.gpu_id} at {self.at:%H:%M:%S}"


class NodeAgentState(models.Model):
    node = models.OneToOneField(Node, on_delete=models.CASCADE, related_name="telemetry_agent")
    last_batch_at = models.DateTimeField()
    last_reading_at = models.DateTimeField()
    healthy = models.BooleanField(default=True)
    error = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=32, blank=True)
    interval_s = models.FloatField(default=10.0)
    dropped_total = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"agent of node {self.node_id}, last reading {self.last_reading_at:%H:%M:%S}"


def empty_histogram() -> list[int]:
    return [0] * 101


class JobUtilization(models.Model):
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="utilization_summary")
    samples = models.PositiveIntegerField(default=0)
    utilization_sum = models.FloatField(default=0.0)
    utilization_samples = models.PositiveIntegerField(default=0)
    memory_used_sum = models.FloatField(default=0.0)
    memory_samples = models.PositiveIntegerField(default=0)
    #: The highest GPU memory any of its GPUs reported (MiB): the peak of the seff view.
    memory_used_max = models.FloatField(null=True, blank=True)
    idle_samples = models.PositiveIntegerField(default=0)
    gpu_seconds = models.FloatField(default=0.0)
    histogram = models.JSONField(default=empty_histogram)  # samples per whole percent 0..100
    first_at = models.DateTimeField(null=True, blank=True)
    last_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"utilization of job {self.job_id}"
