"""Reading telemetry back: time series per GPU and per job, job summaries, the GPU list.

Series come from the one-minute rollups when the step is a whole number of minutes, else
from raw samples (only inside the raw retention window). Each point is a bucket that holds
data: `{"t", "utilization", "utilization_max", "memory_used_mib", "samples"}`, utilization in
percent (mean over samples in the bucket).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from scheduler.models import Gpu, Job
from scheduler.telemetry.models import GpuMinute, GpuSample, GpuState, JobUtilization

MAX_POINTS = 2000


@dataclass
class _Bucket:
    n: int = 0
    util_n: int = 0
    util_sum: float = 0.0
    util_max: float | None = None
    mem_n: int = 0
    mem_sum: float = 0.0

    def point(self, t: datetime) -> dict[str, Any]:
        return {
            "t": t,
            "utilization": round(self.util_sum / self.util_n, 2) if self.util_n else None,
            "utilization_max": self.util_max,
            "memory_used_mib": round(self.mem_sum / self.mem_n, 1) if self.mem_n else None,
            "samples": self.n,
        }


def _floor(moment: datetime, start: datetime, step: int) -> datetime:
    offset = int((moment - start).total_seconds()) // step * step
    return start + timedelta(seconds=offset)


def gpu_series(gpu: Gpu, *, start: datetime, end: datetime, step: int) -> list[dict[str, Any]]:
    """Points in [start, end) every `step` seconds (see the module docstring)."""
    buckets: dict[datetime, _Bucket] = defaultdict(_Bucket)
    if step % 60 == 0:
        rows = GpuMinute.objects.filter(gpu=gpu, minute__gte=start, minute__lt=end).values_list(
            "minute",
            "samples",
            "utilization_samples",
            "utilization_sum",
            "utilization_max",
            "memory_samples",
            "memory_used_sum",
        )
        for minute, n, util_n, util_sum, util_max, mem_n, mem_sum in rows:
            b = buckets[_floor(minute, start, step)]
            b.n += n
            b.util_n += util_n
            b.util_sum += util_sum
            b.mem_n += mem_n
            b.mem_sum += mem_sum
            if util_max is not None:
                b.util_max = util_max if b.util_max is None else max(b.util_max, util_max)
    else:
        samples = GpuSample.objects.filter(gpu=gpu, at__gte=start, at__lt=end).values_list(
            "at", "utilization", "memory_used_mib"
        )
        for at, util, mem in samples:
            b = buckets[_floor(at, start, step)]
            b.n += 1
            if util is not None:
                b.util_n += 1
                b.util_sum += util
                b.util_max = util if b.util_max is None else max(b.util_max, util)
            if mem is not None:
                b.mem_n += 1
                b.mem_sum += mem
    return [buckets[t].point(t) for t in sorted(buckets)]


def job_series(job: Job) -> list[dict[str, Any]]:
    """Per minute over the job's GPUs: mean utilization, summed memory, GPUs reporting."""
    per_minute: dict[datetime, dict[str, Any]] = {}
    rows = GpuMinute.objects.filter(job=job).order_by("minute", "gpu_id")
    for row in rows.values_list(
        "minute", "utilization_samples", "utilization_sum", "memory_samples", "memory_used_sum"
    ):
        minute, util_n, util_sum, mem_n, mem_sum = row
        point = per_minute.setdefault(minute, {"util_n": 0, "util_sum": 0.0, "mem": 0.0, "gpus": 0})
        point["util_n"] += util_n
        point["util_sum"] += util_sum
        point["mem"] += mem_sum / mem_n if mem_n else 0.0
        point["gpus"] += 1
    return [
        {
            "t": minute,
            "utilization": round(p["util_sum"] / p["util_n"], 2) if p["util_n"] else None,
            "memory_used_mib": round(p["mem"], 1),
            "gpus": p["gpus"],
        }
        for minute, p in sorted(per_minute.items())
    ]


def percentile(histogram: list[int], fraction: float) -> float | None:
    """The smallest whole percent at or below which `fraction` of samples lie.

    >>> percentile([0] * 10 + [5] + [0] * 89 + [95], 0.95)
    100.0
    >>> percentile([10] + [0] * 100, 0.95)
    0.0
    """
    total = sum(histogram)
    if not total:
        return None
    need, seen = fraction * total, 0
    for value, count in enumerate(histogram):
        seen += count
        if seen >= need:
            return float(value)
    return 100.0


def job_summary(job: Job) -> dict[str, Any] | None:
    row = JobUtilization.objects.filter(job=job).first()
    if row is None:
        return None
    return {
        "samples": row.samples,
        "utilization_mean": (
            round(row.utilization_sum / row.utilization_samples, 2)
            if row.utilization_samples
            else None
        ),
        "utilization_p95": percentile(row.histogram, 0.95),
        "memory_used_mean_mib": (
            round(row.memory_used_sum / row.memory_samples, 1) if row.memory_samples else None
        ),
        "memory_used_max_mib": row.memory_used_max,
        "idle_fraction": (
            round(row.idle_samples / row.utilization_samples, 4)
            if row.utilization_samples
            else None
        ),
        "gpu_hours": round(row.gpu_seconds / 3600, 4),
        "first_at": row.first_at,
        "last_at": row.last_at,
    }


def gpu_overview(*, now: datetime) -> list[dict[str, Any]]:
    """Every present GPU with its latest reading (None fields when never reported)."""
    gpus = Gpu.objects.filter(present=True, node__gone_at__isnull=True).select_related("node")
    states = {s.gpu_id: s for s in GpuState.objects.filter(gpu__in=gpus)}
    rows = []
    for gpu in gpus:
        state = states.get(gpu.pk)
        rows.append(
            {
                "node": gpu.node.name,
                "index": gpu.index,
                "uuid": gpu.uuid or None,
                "model": gpu.model,
                "healthy": state.healthy if state else gpu.healthy,
                "utilization": state.utilization if state else None,
                "memory_used_mib": state.memory_used_mib if state else None,
                "memory_total_mib": state.memory_total_mib if state else gpu.memory_mb,
                "temperature_c": state.temperature_c if state else None,
                "power_w": state.power_w if state else None,
                "foreign_processes": state.foreign_processes if state else 0,
                "job": state.job_id if state else None,
                "sampled_at": state.at if state else None,
                "sample_age_s": round((now - state.at).total_seconds(), 1) if state else None,
            }
        )
    return rows
