from django.contrib import admin

from pipelines.models import Dataset, DatasetVersion, Pipeline, PipelineRun, StepRun


class ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    """History is kept: runs, steps and versions are read here, changed through the API."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "team", "owner", "schedule", "enabled", "next_run_at"]
    list_filter = ["team", "enabled"]
    fields = ["enabled", "schedule", "overlap", "description"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # defined through the API or the SDK (the gate judges it there)


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnly):
    list_display = ["pipeline", "number", "status", "trigger", "created_at", "finished_at"]
    list_filter = ["status", "trigger"]


@admin.register(StepRun)
class StepRunAdmin(ReadOnly):
    list_display = ["run", "name", "kind", "status", "attempt", "finished_at"]
    list_filter = ["status", "kind"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "team", "owner", "retention_days"]
    fields = ["description", "retention_days"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnly):
    list_display = ["dataset", "version", "format", "row_count", "bytes", "created_at"]
