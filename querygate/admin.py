"""Admin screens: warehouses (with grants), catalog tables (declare partitioning), and the
query audit log (read-only; kill from the action)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.utils import timezone

from querygate.models import (
    ACTIVE_STATUSES,
    AnalyzeAudit,
    CatalogTable,
    Query,
    Warehouse,
    WarehouseGrant,
)
from querygate.services.enforcement import cancel_query
from querygate.tasks import refresh_catalog


class WarehouseGrantInline(admin.TabularInline):
    model = WarehouseGrant
    extra = 0


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "engine",
        "enabled",
        "open_to_all",
        "catalog_version",
        "catalog_refreshed_at",
    )
    readonly_fields = ("catalog_version", "catalog_refreshed_at", "catalog_error")
    inlines = [WarehouseGrantInline]
    actions = ["refresh"]

    @admin.action(description="Refresh the catalog now")
    def refresh(self, request: Any, queryset: Any) -> None:
        for warehouse in queryset:
            refresh_catalog.delay(warehouse.pk)
        self.message_user(request, f"Refresh queued for {queryset.count()} warehouse(s).")


@admin.register(CatalogTable)
class CatalogTableAdmin(admin.ModelAdmin):
    """Statistics come from the engine; an admin sets the partitioning declarations."""

    list_display = (
        "warehouse",
        "schema",
        "name",
        "rows",
        "bytes",
        "present",
        "requires_partition_filter",
    )
    list_filter = ("warehouse", "present", "requires_partition_filter")
    search_fields = ("name",)
    fields = (
        "warehouse",
        "schema",
        "name",
        "rows",
        "bytes",
        "columns",
        "primary_key",
        "unique_keys",
        "partition_columns",
        "declared_partition_columns",
        "requires_partition_filter",
        "present",
        "refreshed_at",
    )
    readonly_fields = (
        "warehouse",
        "schema",
        "name",
        "rows",
        "bytes",
        "columns",
        "primary_key",
        "unique_keys",
        "partition_columns",
        "present",
        "refreshed_at",
    )

    def save_model(self, request: Any, obj: CatalogTable, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # A declaration changes what the analysis sees: a new catalog version.
        Warehouse.objects.filter(pk=obj.warehouse_id).update(
            catalog_version=obj.warehouse.catalog_version + 1
        )


@admin.register(Query)
class QueryAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "created_at",
        "user",
        "warehouse",
        "decision",
        "status",
        "row_count",
        "killed_by",
    )
    list_filter = ("status", "decision", "warehouse")
    search_fields = ("sql", "user__username", "fingerprint")
    actions = ["kill"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.action(description="Kill the selected running queries")
    def kill(self, request: Any, queryset: Any) -> None:
        killed = 0
        for query in queryset.filter(status__in=ACTIVE_STATUSES):
            cancel_query(request.user, query.pk, now=timezone.now(), reason="killed from admin")
            killed += 1
        self.message_user(request, f"Kill requested for {killed} query(ies).", messages.INFO)


@admin.register(AnalyzeAudit)
class AnalyzeAuditAdmin(admin.ModelAdmin):
    """Every analysis request (the SQL editor sends one as you type): read-only."""

    list_display = ("pk", "created_at", "user", "warehouse", "decision", "explain_status")
    list_filter = ("explain_status", "decision", "warehouse")
    search_fields = ("sql", "user__username", "fingerprint")

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
