"""`manage.py demo_warehouse --dataset tpch|tpcds [--scale 0.1] [--name NAME]`: build a
DuckDB warehouse from the TPC extensions and register it (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from demo import warehouse as demo
from portal.errors import KarimasuError
from querygate.errors import EngineError


class Command(BaseCommand):
    help = "Build and register a DuckDB demo warehouse (TPC-H `demo` or TPC-DS `tpcds`)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dataset", choices=sorted(demo.DATASETS), default="tpch")
        parser.add_argument("--scale", type=float, default=0.1)
        parser.add_argument("--name", default=None, help="Warehouse name (demo / tpcds).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["scale"] <= 0:
            raise CommandError("--scale must be positive")
        try:
            warehouse = demo.build_demo_warehouse(
                options["dataset"],
                scale=options["scale"],
                directory=Path(settings.VAR_DIR) / "warehouses",
                now=timezone.now(),
                name=options["name"],
            )
        except (KarimasuError, EngineError, OSError) as error:
            raise CommandError(str(error)) from error
        tables = warehouse.tables.filter(present=True).count()
        self.stdout.write(
            f"warehouse {warehouse.name}: {warehouse.connection} ({tables} tables, "
            f"catalog v{warehouse.catalog_version})"
        )
