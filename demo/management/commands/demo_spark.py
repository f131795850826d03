"""`manage.py demo_spark [--scale 0.01] [--connection sc://...] [--name spark]`: one command
for a Spark warehouse in the demo.

Without ``--connection`` it starts a local Spark Connect server (the pyspark wheel's jars and
the OS's Java 17+, data under ``$KARIMASU_VAR_DIR/spark``), loads TPC-H-shaped tables
(DuckDB's generator, Parquet, ``ANALYZE``d), registers warehouse ``spark`` (open to every
signed-in user), refreshes its catalog and keeps serving until Ctrl-C, which stops Spark.
With ``--connection`` it only registers that server (its tables must exist) and returns.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from demo.warehouse import register_spark_warehouse
from portal.errors import KarimasuError
from querygate.engines import spark_local
from querygate.engines.spark import SparkEngine
from querygate.errors import EngineError


class Command(BaseCommand):
    help = "Start a local Spark Connect server with TPC-H and register warehouse `spark`."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--scale", type=float, default=0.01)
        parser.add_argument("--name", default="spark")
        parser.add_argument("--connection", default="", help="An existing server: sc://...")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["scale"] <= 0:
            raise CommandError("--scale must be positive")
        if options["connection"]:
            self._register(options["connection"], options["name"])
            return
        workdir = Path(settings.VAR_DIR) / "spark"
        self.stdout.write("starting a local Spark Connect server (about a minute)...")
        try:
            server = spark_local.start(workdir)
        except RuntimeError as error:
            raise CommandError(str(error)) from error
        try:
            spark = SparkEngine(server.connection).connect()
            try:
                spark_local.load_tpch(spark, workdir / "tpch", scale=options["scale"])
            finally:
                spark.stop()
            self._register(server.connection, options["name"])
            self.stdout.write("Spark is serving; Ctrl-C stops it.")
            while server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()

    def _register(self, connection: str, name: str) -> None:
        try:
            warehouse = register_spark_warehouse(connection, now=timezone.now(), name=name)
        except (KarimasuError, EngineError, OSError) as error:
            raise CommandError(str(error)) from error
        tables = warehouse.tables.filter(present=True).count()
        self.stdout.write(
            f"warehouse {warehouse.name}: {connection} ({tables} tables, "
            f"catalog v{warehouse.catalog_version})"
        )
