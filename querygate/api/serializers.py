"""Shapes of the query gate's API: requests checked here, rules in the services."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from querygate.messages import (
    localize_analysis,
    localize_error,
    localize_kill_reason,
    localize_reasons,
)
from querygate.models import CatalogTable, Query, QueryStatus, Warehouse
from querygate.services.results import PREVIEW_ROWS, download_info


def download_of(query: Query) -> dict[str, Any]:
    """``results.download_info`` with a message in the reader's language saying why a
    download is not complete ('' when it is)."""
    info = download_info(query)
    info["message"] = "" if info["complete"] else export_message(query)
    return info


def export_message(query: Query) -> str:
    export = query.export or {}
    status = export.get("status")
    cap = {"rows": f"{query.row_count or 0:,}"}
    if status == "over_cap":
        if export.get("cut_by") == "bytes":
            return _(
                "The result passed the export cap of %(mib)s MiB: downloads hold the first "
                "%(rows)s rows."
            ) % {**cap, "mib": f"{int(export.get('max_bytes') or 0) // 1024**2:,}"}
        return _(
            "The result has more rows than the export cap of %(cap)s: downloads hold the "
            "first %(rows)s rows."
        ) % {**cap, "cap": f"{int(export.get('max_rows') or 0):,}"}
    if status == "disabled":
        return _("Exports are off on this warehouse: downloads hold the first %(rows)s rows.") % cap
    if status == "failed":
        return _("The full export failed (%(error)s): downloads hold the first %(rows)s rows.") % {
            **cap,
            "error": export.get("message", ""),
        }
    return (
        _(
            "Downloads hold the first %(rows)s rows (the row cap); submit with export to get "
            "them all."
        )
        % cap
    )


class WarehouseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Warehouse
        fields = [
            "name",
            "engine",
            "dialect",
            "description",
            "enabled",
            "max_runtime_s",
            "row_cap",
            "catalog_version",
            "catalog_refreshed_at",
        ]
        read_only_fields = fields


class WarehouseAdminSerializer(WarehouseSerializer):
    """What admins see: the connection and the policy too."""

    class Meta(WarehouseSerializer.Meta):
        fields = [*WarehouseSerializer.Meta.fields, "connection", "policy", "catalog_error"]
        read_only_fields = fields


class CatalogTableSerializer(serializers.ModelSerializer):
    class Meta:
        model = CatalogTable
        fields = [
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
            "refreshed_at",
        ]
        read_only_fields = fields


class QueryRequestSerializer(serializers.Serializer):
    warehouse = serializers.SlugField()
    sql = serializers.CharField(max_length=100_000, trim_whitespace=False)
    team = serializers.SlugField(required=False, help_text="Account the query to this team.")
    acknowledge_warnings = serializers.BooleanField(
        default=False, help_text="Run a query whose decision is warn."
    )
    override_justification = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=2000,
        help_text="Leads and admins: run a rejected query anyway, with this reason on record.",
    )
    export = serializers.BooleanField(
        default=False,
        help_text=(
            "A SELECT: make every row the warehouse's export cap allows downloadable. A result "
            "cut at the row cap is run again, uncapped up to the export cap, into a Parquet "
            "file streamed from the engine (the preview and pages keep the capped rows)."
        ),
    )


class AnalyzeRequestSerializer(serializers.Serializer):
    warehouse = serializers.SlugField()
    sql = serializers.CharField(max_length=100_000, trim_whitespace=False)
    team = serializers.SlugField(required=False)
    explain = serializers.BooleanField(default=True, help_text="Add the engine's EXPLAIN.")


class DownloadSerializer(serializers.Serializer[Any]):
    rows = serializers.IntegerField(help_text="Rows a download holds.")
    complete = serializers.BooleanField(
        help_text="Every row of the result (else the first rows, up to the row cap)."
    )
    # A field called "source" (Field.source is an attribute too): declared fields win.
    source = serializers.ChoiceField(choices=["export", "result"])  # type: ignore[assignment]
    export_status = serializers.CharField(
        allow_null=True, help_text="complete, over_cap, disabled, failed; null: none needed."
    )
    message = serializers.CharField(allow_blank=True, help_text="Why a download is not complete.")


class QuerySerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True, allow_null=True)
    warehouse = serializers.CharField(source="warehouse.name", read_only=True)
    killed_by = serializers.CharField(source="killed_by.username", read_only=True, allow_null=True)
    override_by = serializers.CharField(
        source="override_by.username", read_only=True, allow_null=True
    )
    # A plain string in the schema: an enum here collides with other apps' "status" enums
    # (settings.ENUM_NAME_OVERRIDES could name it QueryStatusEnum).
    status = serializers.CharField(read_only=True, help_text=", ".join(QueryStatus.values))
    duration_s = serializers.FloatField(read_only=True, allow_null=True)
    cached_from = serializers.IntegerField(source="cached_from_id", read_only=True, allow_null=True)
    download = serializers.SerializerMethodField()

    class Meta:
        model = Query
        fields = [
            "id",
            "user",
            "team",
            "warehouse",
            "sql",
            "fingerprint",
            "statement_type",
            "decision",
            "reasons",
            "acknowledged",
            "override_by",
            "override_justification",
            "status",
            "mode",
            "cached_from",
            "bytes_estimate",
            "runtime_budget_s",
            "created_at",
            "started_at",
            "deadline",
            "finished_at",
            "duration_s",
            "killed_by",
            "kill_reason",
            "row_count",
            "truncated",
            "result_expired_at",
            "export_requested",
            "download",
            "error",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Query) -> dict[str, Any]:
        """What the worker stored (the error, the gate's kill reasons) in the reader's
        language."""
        data: dict[str, Any] = super().to_representation(instance)
        data["error"] = localize_error(data.get("error"))
        data["kill_reason"] = localize_kill_reason(data.get("kill_reason"))
        return data

    @extend_schema_field(DownloadSerializer(allow_null=True))
    def get_download(self, query: Query) -> dict[str, Any] | None:
        """What the CSV/Parquet/Arrow downloads hold, once the query succeeded."""
        if query.status != QueryStatus.SUCCEEDED:
            return None
        return download_of(query)


class ResultPreviewSerializer(serializers.Serializer):
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField())
    row_count = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="The row cap cut the result.")


class QueryDetailSerializer(QuerySerializer):
    analysis = serializers.JSONField(read_only=True)
    result = serializers.SerializerMethodField(
        help_text=f"The first {PREVIEW_ROWS} rows; all of them at results/."
    )

    class Meta(QuerySerializer.Meta):
        fields = [*QuerySerializer.Meta.fields, "analysis", "result"]
        read_only_fields = fields

    def to_representation(self, instance: Query) -> dict[str, Any]:
        """The stored analysis' findings and the reasons in the reader's language."""
        data: dict[str, Any] = super().to_representation(instance)
        analysis = data.get("analysis")
        codes = analysis.get("reason_codes") if isinstance(analysis, dict) else None
        data["analysis"] = localize_analysis(analysis)
        data["reasons"] = localize_reasons(data.get("reasons"), codes)
        return data

    @extend_schema_field(ResultPreviewSerializer(allow_null=True))
    def get_result(self, query: Query) -> dict[str, Any] | None:
        if query.result is None:
            return None
        return {
            "columns": query.result["columns"],
            "rows": query.result["rows"][:PREVIEW_ROWS],
            "row_count": query.row_count or 0,
            "truncated": query.truncated,
        }


class CancelRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)


class AnalysisSerializer(serializers.Serializer):
    """The analysis report (the same JSON as ``manage.py gate analyze``)."""

    decision = serializers.ChoiceField(choices=["allow", "warn", "reject"])
    reasons = serializers.ListField(child=serializers.CharField())
    statement_type = serializers.CharField(allow_null=True)
    tables = serializers.ListField(child=serializers.CharField())
    columns = serializers.ListField(child=serializers.CharField())
    estimate = serializers.JSONField(allow_null=True)
    findings = serializers.ListField(child=serializers.DictField())
    normalized_sql = serializers.CharField()
    error = serializers.JSONField(allow_null=True)
    explain = serializers.JSONField(allow_null=True)


class ResultPageSerializer(serializers.Serializer):
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField())
    row_count = serializers.IntegerField()
    truncated = serializers.BooleanField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    download = DownloadSerializer()
