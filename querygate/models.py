"""Warehouses, who may use them, their catalog snapshots and the audit log of queries.

A ``Query`` row is the audit record of one request *and* the state of its execution: it is
written (with the analysis and decision) before anything reaches the engine, so a query
never runs without a decision on record. Only ``querygate.services`` changes ``status``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Team

# The sqlglot dialect of each engine kind, where it is not the kind's own name.
DIALECTS = {"datamart": "duckdb"}


class Warehouse(models.Model):
    """An admin-registered warehouse. ``connection`` is a PostgreSQL DSN or a DuckDB file
    path; it is a secret and never leaves the API for non-admins."""

    class Engine(models.TextChoices):
        DUCKDB = "duckdb", "DuckDB"
        POSTGRES = "postgres", "PostgreSQL"
        DATAMART = "datamart", "Data mart (DuckDB over a team's datasets)"
        SPARK = "spark", "Spark SQL"

    name = models.SlugField(max_length=50, unique=True)
    engine = models.CharField(max_length=16, choices=Engine.choices)
    connection = models.TextField(
        help_text=_("PostgreSQL DSN, DuckDB file path or Spark Connect URL (secret).")
    )
    dialect = models.CharField(
        max_length=32,
        blank=True,
        help_text=_("sqlglot dialect: empty or the engine's own (the gate judges what runs)."),
    )
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    open_to_all = models.BooleanField(
        default=False,
        help_text=_(
            "Any signed-in user may read, while the warehouse has no team grants; otherwise "
            "only granted teams."
        ),
    )
    admin_writes = models.BooleanField(default=False, help_text=_("Admins may write."))
    # Overrides of querygate.analysis.Policy fields, e.g. {"max_bytes_scanned": 1e12}.
    policy = models.JSONField(default=dict, blank=True)
    max_runtime_s = models.PositiveIntegerField(default=300)
    row_cap = models.PositiveIntegerField(default=10_000)
    daily_bytes_per_user = models.BigIntegerField(null=True, blank=True)
    daily_bytes_per_team = models.BigIntegerField(null=True, blank=True)
    max_concurrent_per_user = models.PositiveIntegerField(default=3)
    result_cache_s = models.PositiveIntegerField(
        default=0,
        help_text=_(
            "Reuse a result of the same normalized query on the same catalog version for this "
            "many seconds (0: off). Only safe where the data changes with the catalog."
        ),
    )
    catalog_version = models.PositiveIntegerField(default=0)
    catalog_refreshed_at = models.DateTimeField(null=True, blank=True)
    catalog_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The admin screens refuse policy overrides that do not make a valid Policy, and a
        dialect the engine does not speak."""
        _check_policy(self.policy)
        if self.dialect and self.dialect != self.sql_dialect:
            from django.core.exceptions import ValidationError

            raise ValidationError(
                {
                    "dialect": _(
                        "A %(engine)s warehouse is queried in the %(engine)s dialect: leave "
                        "it empty or write %(engine)s."
                    )
                    % {"engine": self.sql_dialect}
                }
            )

    @property
    def sql_dialect(self) -> str:
        """The dialect the gate parses in: always the engine's own. A stored dialect that
        differs (saved before it was validated) is ignored, so what the gate judges is what
        the engine runs."""
        return DIALECTS.get(str(self.engine), str(self.engine))


class WarehouseGrant(models.Model):
    """Team access to a warehouse: ``role`` lead means only the team's leads; member means
    every member (leads included). ``allow_writes`` lets them run INSERT/UPDATE/DDL."""

    class Role(models.TextChoices):
        MEMBER = "member", _("Member")
        LEAD = "lead", _("Lead")

    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE, related_name="grants")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="warehouse_grants")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    allow_writes = models.BooleanField(default=False)
    policy = models.JSONField(default=dict, blank=True, help_text=_("Policy overrides."))

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["warehouse", "team", "role"], name="warehousegrant_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.team} ({self.role}) on {self.warehouse}"

    def clean(self) -> None:
        """The admin screens refuse policy overrides that do not make a valid Policy."""
        _check_policy(self.policy)


class CatalogTable(models.Model):
    """One table of a warehouse's catalog snapshot. ``columns`` is a list of
    ``{name, type, avg_width, bytes, distinct}``. Partition columns come from the engine
    (PostgreSQL partitioning) or are declared by an admin (``declared_partition_columns``,
    kept across refreshes)."""

    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE, related_name="tables")
    schema = models.CharField(max_length=128)
    name = models.CharField(max_length=128)
    rows = models.BigIntegerField(null=True, blank=True)
    bytes = models.BigIntegerField(null=True, blank=True)
    columns = models.JSONField(default=list)
    primary_key = models.JSONField(default=list, blank=True)
    unique_keys = models.JSONField(default=list, blank=True)
    partition_columns = models.JSONField(default=list, blank=True)
    declared_partition_columns = models.JSONField(default=list, blank=True)
    requires_partition_filter = models.BooleanField(default=False)
    present = models.BooleanField(default=True)
    refreshed_at = models.DateTimeField()

    class Meta:
        ordering = ["warehouse", "schema", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["warehouse", "schema", "name"], name="catalogtable_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.warehouse}:{self.schema}.{self.name}"


class QueryStatus(models.TextChoices):
    REJECTED = "rejected", _("Rejected")
    NEEDS_ACK = "needs_ack", _("Needs acknowledgement")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    KILLED = "killed", _("Killed")
    LOST = "lost", _("Lost")


ACTIVE_STATUSES = (QueryStatus.QUEUED, QueryStatus.RUNNING)
FINAL_STATUSES = (
    QueryStatus.REJECTED,
    QueryStatus.NEEDS_ACK,
    QueryStatus.SUCCEEDED,
    QueryStatus.FAILED,
    QueryStatus.CANCELLED,
    QueryStatus.KILLED,
    QueryStatus.LOST,
)


class Query(models.Model):
    """The audit row of one request and the state of its execution (see module doc)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="queries"
    )
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="queries"
    )
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="queries")
    sql = models.TextField()
    fingerprint = models.CharField(max_length=64, db_index=True)
    # sha256 of the normalized SQL, the catalog version and the row cap: the result cache key.
    cache_key = models.CharField(max_length=64, blank=True, db_index=True)
    cached_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    statement_type = models.CharField(max_length=16, blank=True)
    #: What the engine runs: the statement the gate judged, rendered by sqlglot from the
    #: analysis's tree at submission, a SELECT capped at ``row_cap + 1`` rows.
    engine_sql = models.TextField(blank=True, default="")
    analysis = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    decision = models.CharField(max_length=8)
    reasons = models.JSONField(default=list)
    acknowledged = models.BooleanField(default=False)
    override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    override_justification = models.TextField(blank=True)
    catalog_version = models.PositiveIntegerField(default=0)
    bytes_estimate = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=QueryStatus.choices, db_index=True)
    mode = models.CharField(max_length=8, blank=True)  # inline or celery
    runtime_budget_s = models.FloatField(default=0)
    created_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    engine_handle = models.JSONField(default=dict, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    killed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    kill_reason = models.CharField(max_length=200, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    # The executor's last sign of life while running (its watcher writes it every few
    # seconds): the watchdog marks a query whose executor went silent as lost.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Peak temporary (spill) bytes the engine used: counted in the daily bytes budget.
    temp_bytes = models.BigIntegerField(default=0)
    row_count = models.IntegerField(null=True, blank=True)
    truncated = models.BooleanField(default=False)
    # The first rows (``{"columns", "rows"}``) for the detail view; all of them are in
    # ``result_file`` (a Parquet file in QUERYGATE_RESULTS_DIR). Without a file (no columns,
    # or a row from before result files) ``result`` holds every row.
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    result_file = models.CharField(max_length=200, blank=True)
    result_expired_at = models.DateTimeField(null=True, blank=True)
    # A full export was asked for at submission (``export: true``): a result cut at the row
    # cap is then run again, uncapped up to the export cap, into ``export_file`` (the
    # downloads' file). ``export`` says how it went: ``{"status": "complete" | "over_cap" |
    # "disabled" | "failed", "rows", "bytes", "message"}`` (None: none was needed or asked).
    export_requested = models.BooleanField(default=False)
    export = models.JSONField(null=True, blank=True)
    export_file = models.CharField(max_length=200, blank=True)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["warehouse", "status"]),
        ]

    def __str__(self) -> str:
        return f"query {self.pk} ({self.status})"

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


def _check_policy(overrides: object) -> None:
    from django.core.exceptions import ValidationError

    from querygate.errors import InvalidPolicy
    from querygate.overrides import export_limits, policy_from, sandbox_limits

    if not isinstance(overrides, dict):
        raise ValidationError({"policy": _("An object of policy fields is expected.")})
    try:
        policy_from(overrides, allow_writes=False)
        sandbox_limits(overrides)
        export_limits(overrides)
    except InvalidPolicy as exc:
        raise ValidationError({"policy": exc.message}) from exc


class AnalyzeAudit(models.Model):
    """The audit row of one analysis request (``POST /api/v1/queries/analyze/``, the SQL
    editor as you type): written before the engine's EXPLAIN is asked for, completed after.
    Lighter than a ``Query``: nothing runs, so there is no execution state."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True)
    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE, related_name="+")
    sql = models.TextField()
    fingerprint = models.CharField(max_length=64, db_index=True)
    decision = models.CharField(max_length=8, blank=True)
    # "skipped" (not asked), "running", "ok", "timeout" or "failed".
    explain_status = models.CharField(max_length=8, default="skipped")
    explain_error = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"analysis {self.pk} ({self.decision or 'error'})"
