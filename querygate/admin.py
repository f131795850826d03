"""Admin screens: warehouses (with grants), catalog tables (declare partitioning), and the
query audit log (read-only; kill from the action)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.admin_tools import NoDeleteAdmin, confirm_with_reason
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
class QueryAdmin(NoDeleteAdmin):
    """The query audit log: read-only, never deleted here (the retention purge does);
    kill from the action, with a reason."""

    list_display = (
        "pk",
        "created_at",
        "user",
        "warehouse",
        "sql_short",
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

    @admin.display(description=gettext_lazy("SQL text"))
    def sql_short(self, query: Query) -> str:
        return Truncator(" ".join(query.sql.split())).chars(80)

    @admin.action(description=gettext_lazy("Kill the selected running queries"))
    def kill(self, request: Any, queryset: Any) -> HttpResponse | None:
        active = queryset.filter(status__in=ACTIVE_STATUSES)

        def act(reason: str) -> None:
            killed = 0
            for query in active:
                cancel_query(request.user, query.pk, now=timezone.now(), reason=reason)
                killed += 1
            self.message_user(
                request,
                _("Kill requested for %(count)s query(ies).") % {"count": killed},
                messages.INFO,
            )

        return confirm_with_reason(
            self,
            request,
            active,
            title=_("Kill queries"),
            question=_(
                "Kill these queries? The engine stops them now. The reason is recorded as "
                "the kill reason and shown to their owners."
            ),
            act=act,
        )


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
