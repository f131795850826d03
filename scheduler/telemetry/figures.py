"""Small figures drawn on the server: a job's GPU utilization as SVG polyline points (the
job page's sparkline; the same numbers as ``/api/v1/jobs/{id}/utilization/``)."""

from __future__ import annotations

from typing import Any

from scheduler.models import Job
from scheduler.telemetry import series


def utilization_figure(job: Job) -> dict[str, Any] | None:
    """``{"points", "width", "mean", "p95", "last", "idle"}`` (percent; the points on a
    0-100 tall box, one x step per minute), or None when no agent reported for the job."""
    summary = series.job_summary(job)
    minutes = [p["utilization"] for p in series.job_series(job) if p["utilization"] is not None]
    if summary is None and not minutes:
        return None
    if len(minutes) == 1:
        minutes = minutes * 2  # one minute still draws a line
    points = " ".join(
        f"{x},{100 - min(max(value, 0.0), 100.0):.1f}" for x, value in enumerate(minutes)
    )
    idle = (summary or {}).get("idle_fraction")
    return {
        "points": points,
        "width": max(len(minutes) - 1, 1),
        "mean": (summary or {}).get("utilization_mean"),
        "p95": (summary or {}).get("utilization_p95"),
        "last": minutes[-1] if minutes else None,
        "idle": idle * 100 if idle is not None else None,
    }
