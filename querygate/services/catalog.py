"""Catalog snapshots of warehouses: refreshed from the engine, declared partitioning,
and the pure analysis ``Catalog`` built from a snapshot (cached per process)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from functools import lru_cache

from django.db import transaction
from django.utils.translation import gettext as _

from portal.errors import NotFoundError
from querygate.analysis import Catalog, ColumnStats, TableStats
from querygate.engines import Engine
from querygate.errors import EngineError
from querygate.models import CatalogTable, Warehouse
from querygate.services.warehouses import engine_of

log = logging.getLogger("karimasu.querygate")

DEFAULT_SCHEMAS = {"duckdb": "main", "postgres": "public", "spark": "default"}


def catalog_for(warehouse: Warehouse) -> Catalog:
    """The analysis catalog of the warehouse's current snapshot, cached per process and
    keyed by the version and refresh time (a rebuilt database reusing ids cannot alias)."""
    refreshed = warehouse.catalog_refreshed_at.isoformat() if warehouse.catalog_refreshed_at else ""
    return _catalog(warehouse.pk, warehouse.catalog_version, refreshed, warehouse.engine)


@lru_cache(maxsize=32)
def _catalog(warehouse_id: int, version: int, refreshed: str, engine: str) -> Catalog:
    tables = []
    for row in CatalogTable.objects.filter(warehouse_id=warehouse_id, present=True):
        columns = tuple(
            ColumnStats(c["name"], c["type"], c["avg_width"], c.get("bytes"), c.get("distinct"))
            for c in row.columns
        )
        tables.append(
            TableStats(
                row.name,
                columns,
                schema=row.schema,
                rows=row.rows,
                bytes=row.bytes,
                primary_key=tuple(row.primary_key),
                unique_keys=tuple(tuple(k) for k in row.unique_keys),
                partition_columns=tuple(row.declared_partition_columns or row.partition_columns),
                requires_partition_filter=row.requires_partition_filter,
            )
        )
    return Catalog(tuple(tables), default_schema=DEFAULT_SCHEMAS.get(engine, "main"))


def refresh_catalog(warehouse_id: int, *, now: datetime, engine: Engine | None = None) -> int:
    """Read the engine's catalog into the snapshot; returns the new catalog version.

    Admin-declared partition columns and the partition-filter flag survive; tables gone
    from the engine are kept with ``present=False`` (their declarations stay). Engine
    failures are recorded on the warehouse and re-raised."""
    warehouse = Warehouse.objects.get(pk=warehouse_id)
    engine = engine or engine_of(warehouse)
    try:
        tables = engine.catalog()
    except EngineError as error:
        Warehouse.objects.filter(pk=warehouse_id).update(catalog_error=str(error)[:2000])
        raise
    with transaction.atomic():
        warehouse = Warehouse.objects.select_for_update().get(pk=warehouse_id)
        seen = []
        for t in tables:
            row, _ = CatalogTable.objects.update_or_create(
                warehouse=warehouse,
                schema=t.schema,
                name=t.name,
                defaults={
                    "rows": t.rows,
                    "bytes": t.bytes,
                    "columns": [dataclasses.asdict(c) for c in t.columns],
                    "primary_key": list(t.primary_key),
                    "unique_keys": [list(k) for k in t.unique_keys],
                    "partition_columns": list(t.partition_columns),
                    "present": True,
                    "refreshed_at": now,
                },
            )
            seen.append(row.pk)
        warehouse.tables.exclude(pk__in=seen).update(present=False)
        warehouse.catalog_version += 1
        warehouse.catalog_refreshed_at = now
        warehouse.catalog_error = ""
        warehouse.save(update_fields=["catalog_version", "catalog_refreshed_at", "catalog_error"])
    log.info(
        "catalog.refreshed warehouse=%s tables=%d version=%d",
        warehouse.name,
        len(tables),
        warehouse.catalog_version,
    )
    return warehouse.catalog_version


def declare_partitioning(
    warehouse: Warehouse, table: str, columns: list[str], *, required: bool, schema: str = ""
) -> CatalogTable:
    """An admin declares a table's partition columns and whether a filter on them is
    required. The next analysis sees it (the catalog version is bumped)."""
    schema = schema or DEFAULT_SCHEMAS.get(warehouse.engine, "main")
    with transaction.atomic():
        try:
            row = CatalogTable.objects.select_for_update().get(
                warehouse=warehouse, schema=schema, name=table
            )
        except CatalogTable.DoesNotExist:
            raise NotFoundError(
                _("Table %(table)s is not in the catalog.") % {"table": f"{schema}.{table}"}
            ) from None
        known = {c["name"].lower() for c in row.columns}
        missing = [c for c in columns if c.lower() not in known]
        if missing:
            raise NotFoundError(
                _("%(table)s has no column %(columns)s.")
                % {"table": f"{schema}.{table}", "columns": ", ".join(missing)}
            )
        row.declared_partition_columns = columns
        row.requires_partition_filter = required
        row.save(update_fields=["declared_partition_columns", "requires_partition_filter"])
        Warehouse.objects.filter(pk=warehouse.pk).update(
            catalog_version=warehouse.catalog_version + 1
        )
    warehouse.refresh_from_db(fields=["catalog_version"])
    return row
