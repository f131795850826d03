"""The demo warehouses: TPC-H (``demo``) or TPC-DS (``tpcds``) generated into a DuckDB file
(the extensions load from their PyPI wheels: ``querygate.engines.tpc``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
from django.db import transaction

from querygate.engines import tpc
from querygate.models import Warehouse
from querygate.services.catalog import refresh_catalog

DATASETS = {
    # dataset: (warehouse name, a table the generator creates)
    "tpch": ("demo", "lineitem"),
    "tpcds": ("tpcds", "store_sales"),
}


def build_demo_warehouse(
    dataset: str, *, scale: float, directory: Path, now: datetime, name: str | None = None
) -> Warehouse:
    """Generate the data (skipped when the file already holds it at this scale), register
    the warehouse (updated, never duplicated) and refresh its catalog."""
    default_name, probe = DATASETS[dataset]
    name = name or default_name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{dataset}-sf{scale:g}.duckdb"
    connection = duckdb.connect(str(path))
    try:
        present = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [probe]
        ).fetchone()
        if not present or not present[0]:
            tpc.generate(connection, dataset, scale)
            connection.execute("CHECKPOINT")
    finally:
        connection.close()
    with transaction.atomic():
        warehouse, _ = Warehouse.objects.update_or_create(
            name=name,
            defaults={
                "engine": Warehouse.Engine.DUCKDB,
                "connection": str(path),
                "dialect": "duckdb",
                # The demo is open to every signed-in user; real warehouses start closed.
                "open_to_all": True,
                "description": f"{dataset.upper()} at scale factor {scale:g} (DuckDB demo)",
                # The demo's data only changes when rebuilt (a new catalog version).
                "result_cache_s": 600,
            },
        )
    refresh_catalog(warehouse.pk, now=now)
    warehouse.refresh_from_db()
    return warehouse


def register_spark_warehouse(
    connection: str, *, now: datetime, name: str = "spark", description: str = ""
) -> Warehouse:
    """Register (or update) the Spark warehouse ``name`` over the Spark Connect URL
    ``connection`` and refresh its catalog from Spark's metastore."""
    with transaction.atomic():
        warehouse, _ = Warehouse.objects.update_or_create(
            name=name,
            defaults={
                "engine": Warehouse.Engine.SPARK,
                "connection": connection,
                "dialect": "spark",
                "open_to_all": True,
                "description": description or "TPC-H on a local Spark Connect server (demo)",
            },
        )
    refresh_catalog(warehouse.pk, now=now)
    warehouse.refresh_from_db()
    return warehouse
