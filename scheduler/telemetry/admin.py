from django.contrib import admin, messages
from django.utils import timezone

from portal.admin_tools import ReadOnlyAdmin
from scheduler.telemetry.models import GpuState, JobUtilization, NodeAgentState, NodeToken


@admin.register(NodeToken)
class NodeTokenAdmin(admin.ModelAdmin):
    list_display = ["node", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["node", "prefix", "digest", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False  # created by `manage.py create_node_token`: the plaintext is shown once

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)


@admin.register(NodeAgentState)
class NodeAgentStateAdmin(ReadOnlyAdmin):
    list_display = ["node", "last_reading_at", "healthy", "source", "dropped_total"]


@admin.register(GpuState)
class GpuStateAdmin(ReadOnlyAdmin):
    list_display = ["gpu", "at", "utilization", "memory_used_mib", "healthy", "foreign_processes"]


@admin.register(JobUtilization)
class JobUtilizationAdmin(ReadOnlyAdmin):
    list_display = ["job", "samples", "gpu_seconds", "first_at", "last_at"]
