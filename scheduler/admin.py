from django.contrib import admin

from scheduler.models import Gpu, Job, JobEvent, NamedMount, Node, NodeEvent


class GpuInline(admin.TabularInline):
    model = Gpu
    extra = 0
    readonly_fields = ("index", "uuid", "model", "memory_mb", "present")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "gpu_model",
        "gpu_capacity",
        "ready",
        "cordoned",
        "last_seen_at",
        "gone_at",
    )
    list_filter = ("ready", "cordoned", "gpu_model")
    readonly_fields = [f.name for f in Node._meta.fields]
    inlines = [GpuInline]


@admin.register(NodeEvent)
class NodeEventAdmin(admin.ModelAdmin):
    list_display = ("at", "node", "kind", "detail")
    list_filter = ("kind",)


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    readonly_fields = ("at", "from_status", "to_status", "reason", "message", "attempt")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Read-only here: status changes go through the services (cancel from the job page)."""

    list_display = (
        "pk",
        "name",
        "owner",
        "team",
        "status",
        "reason",
        "gpus",
        "node",
        "submitted_at",
    )
    list_filter = ("status", "team")
    search_fields = ("name", "owner__username")
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [JobEventInline]


@admin.register(NamedMount)
class NamedMountAdmin(admin.ModelAdmin):
    list_display = ("name", "claim", "path", "read_only", "allow_write")
