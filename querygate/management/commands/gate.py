"""`manage.py gate ...` — the query gate from the command line.

    gate refresh-catalog --warehouse NAME
    gate analyze --warehouse NAME (--sql-file F | --batch F.jsonl) [--format json] [--explain]

(The demo warehouses are built by ``manage.py demo_warehouse``, in the ``demo`` app.)

``analyze`` prints the report ``POST /api/v1/queries/analyze/`` returns, judged by the
warehouse's own policy: one JSON object for ``--sql-file``; one line per input line for
``--batch`` (input ``{"id": ..., "sql": ...}``, output keeps the ``id``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from portal.errors import KarimasuError
from querygate.errors import EngineError
from querygate.overrides import policy_from
from querygate.services.access import Access, get_warehouse
from querygate.services.analyses import analysis_of
from querygate.services.catalog import refresh_catalog


class Command(BaseCommand):
    help = "Query gate: refresh a catalog, analyze SQL."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        refresh = sub.add_parser("refresh-catalog", help="Read a warehouse's catalog now.")
        refresh.add_argument("--warehouse", required=True)
        check = sub.add_parser("analyze", help="Analyze SQL without running it.")
        check.add_argument("--warehouse", required=True)
        source = check.add_mutually_exclusive_group(required=True)
        source.add_argument("--sql-file", type=Path)
        source.add_argument("--batch", type=Path)
        check.add_argument("--format", choices=["json"], default="json")
        check.add_argument("--explain", action="store_true", help="Add the engine's EXPLAIN.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"].replace("-", "_"))(options)
        except (KarimasuError, EngineError, OSError) as error:
            raise CommandError(str(error)) from error

    def _refresh_catalog(self, options: dict[str, Any]) -> None:
        warehouse = get_warehouse(options["warehouse"])
        version = refresh_catalog(warehouse.pk, now=timezone.now())
        self.stdout.write(f"warehouse {warehouse.name}: catalog v{version}")

    def _analyze(self, options: dict[str, Any]) -> None:
        warehouse = get_warehouse(options["warehouse"])
        policy = policy_from(warehouse.policy, allow_writes=False)
        access = Access(warehouse, None, False, policy)
        explain = options["explain"]

        def report(ident: Any, sql: str) -> str:
            _, data = analysis_of(access, sql, explain=explain)
            return json.dumps({"id": ident, **data}, default=str)

        if options["sql_file"] is not None:
            self.stdout.write(report(str(options["sql_file"]), options["sql_file"].read_text()))
            return
        with options["batch"].open() as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    ident, sql = item["id"], item["sql"]
                except (ValueError, KeyError, TypeError) as error:
                    print(f'line {number}: not {{"id", "sql"}}: {error}', file=sys.stderr)
                    raise CommandError(f"--batch line {number} is malformed") from error
                self.stdout.write(report(ident, sql))
