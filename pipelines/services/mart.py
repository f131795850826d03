"""The ML data mart: each team's datasets, queryable through the gate like tables.

For every team with datasets, the portal keeps a DuckDB file ``<datasets>/<team>/mart.duckdb``
holding one view per dataset over its newest Parquet version, and a warehouse
``mart-<team>`` of kind ``datamart`` on it, granted to that team only. The gate treats it as
any DuckDB warehouse (analysis, estimates from a catalog read through the views, policy,
budget, audit, kill); its sandbox may read Parquet under the team's directory and nowhere
else (``allowed_directories``, then external access off and the configuration locked).

The file is rebuilt whole after each publish and renamed into place, so a query running
on the previous file keeps its views, and readers never see a half-written file.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

import duckdb
from django.db import transaction

from pipelines.models import Dataset
from pipelines.services.datasets import datasets_dir, version_dir
from portal.accounts.models import Team
from querygate.models import Warehouse, WarehouseGrant
from querygate.services.catalog import refresh_catalog

log = logging.getLogger("karimasu.pipelines")

MART_FILE = "mart.duckdb"


def warehouse_name(team: Team) -> str:
    return f"mart-{team.slug}"[:50]


def mart_path(team: Team) -> Path:
    return datasets_dir() / team.slug / MART_FILE


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def build(team: Team) -> Path:
    """Write the team's mart file: one view per dataset whose newest version is Parquet."""
    path = mart_path(team)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{MART_FILE}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    views = 0
    with duckdb.connect(str(temporary)) as con:
        for dataset in Dataset.objects.filter(team=team).order_by("name"):
            version = dataset.versions.order_by("-version").first()
            if version is None or version.format != "parquet":
                continue
            files = str(version_dir(version).resolve() / "**" / "*.parquet")
            con.execute(
                f"CREATE VIEW {_quote(dataset.name)} AS "  # noqa: S608 - names validated, quoted
                f"SELECT * FROM read_parquet({_literal(files)})"
            )
            views += 1
    os.replace(temporary, path)
    log.info("mart.built team=%s views=%s", team.slug, views)
    return path


def refresh(team: Team, *, now: datetime) -> Warehouse:
    """Rebuild the team's mart and its warehouse's catalog (bumping its catalog version, so
    query steps reading the mart miss the cache when a dataset they read changed)."""
    path = build(team)
    with transaction.atomic():
        warehouse, _ = Warehouse.objects.get_or_create(
            name=warehouse_name(team),
            defaults={
                "engine": Warehouse.Engine.DATAMART,
                "connection": str(path),
                "description": f"Datasets of team {team.slug} (pipelines' data mart).",
                "open_to_all": False,
            },
        )
        WarehouseGrant.objects.get_or_create(warehouse=warehouse, team=team)
    refresh_catalog(warehouse.pk, now=now)
    warehouse.refresh_from_db()
    return warehouse
