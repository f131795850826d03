"""Telemetry API routes, mounted under /api/v1/.

`jobs/<id>/utilization/` is a plain path so it never clashes with the jobs router.
"""

from django.urls import path

from scheduler.telemetry.api import views

urlpatterns = [
    path("telemetry/", views.IngestView.as_view(), name="telemetry-ingest"),
    path("telemetry/gpus/", views.GpuOverviewView.as_view(), name="telemetry-gpus"),
    path(
        "gpus/<path:uuid>/utilization/",
        views.GpuUtilizationView.as_view(),
        name="gpu-utilization",
    ),
    path(
        "jobs/<int:job_id>/utilization/",
        views.JobUtilizationView.as_view(),
        name="job-utilization",
    ),
]
