"""`manage.py demo_pipeline`: the demo's pipeline, from query to model (idempotent).

Alice's (team vision) ``churn`` pipeline: the TPC-H feature query on the ``demo`` warehouse,
``python -m demo.pipeline_steps prep`` (CPU) and ``... train`` (1 GPU), which the emulated
cluster runs as real processes (``emulator.karimasu.io/run: process``) reading and writing
through the named mount ``datasets`` (created here). Scheduled nightly at 03:00 UTC; start it
from its page or ``kms.pipelines.run(...)``. ``make run`` sets what it needs:
``PIPELINES_DATASETS_MOUNT=datasets``, ``KARIMASU_JOB_ANNOTATION_PREFIXES`` with
``emulator.karimasu.io``, and the emulator's ``KARIMASU_EMULATOR_VOLUMES``.

Saving a pipeline judges its container steps against the cluster's nodes. ``make run``
creates the pipeline before the demo's emulator starts, so on a fresh database (no node
known yet) the command first reads the demo cluster's nodes from an emulator of its own,
started with the same defaults as ``manage.py cluster emulate`` and stopped at once.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pipelines.services.runs import save_pipeline
from portal.accounts.models import User
from portal.errors import KarimasuError
from scheduler.models import NamedMount, Node

CLAIM = "karimasu-datasets"
FEATURES_SQL = """SELECT c_custkey, c_mktsegment, count(o_orderkey) AS orders,
       sum(o_totalprice) AS spent
FROM customer JOIN orders ON o_custkey = c_custkey
GROUP BY c_custkey, c_mktsegment"""


def definition(python: str = sys.executable) -> dict[str, Any]:
    step = [python, "-m", "demo.pipeline_steps"]
    run = {"emulator.karimasu.io/run": "process"}
    return {
        "steps": [
            {"name": "features", "kind": "query", "warehouse": "demo", "sql": FEATURES_SQL,
             "dataset": "churn_features"},
            {"name": "prep", "kind": "container", "image": "python:3.11-slim",
             "command": [*step, "prep"], "inputs": ["features"], "dataset": "churn_prepped",
             "cpu_millis": 1000, "memory_mb": 2048, "annotations": run},
            {"name": "train", "kind": "container", "image": "pytorch/pytorch:2.4.0",
             "command": [*step, "train"], "inputs": ["prep"], "gpus": 1,
             "dataset": "churn_model", "retries": 1, "annotations": run},
        ]
    }  # fmt: skip


class Command(BaseCommand):
    help = "Create the demo's pipeline (query -> preprocess -> train) for alice."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PIPELINES_DATASETS_MOUNT != "datasets":
            raise CommandError("Set PIPELINES_DATASETS_MOUNT=datasets (make run does).")
        NamedMount.objects.update_or_create(
            name="datasets",
            defaults={
                "claim": CLAIM,
                "path": "/datasets",
                "read_only": True,
                "description": "Pipelines' datasets (the portal's PIPELINES_DATASETS_DIR).",
            },
        )
        if not Node.objects.filter(gone_at__isnull=True).exists():
            _learn_the_demo_nodes()
        try:
            pipeline = save_pipeline(
                User.objects.get(username="alice"),
                team_slug="vision",
                name="churn",
                definition=definition(),
                schedule="0 3 * * *",
                description="Churn features from TPC-H, preprocessed, a model trained on them.",
                now=timezone.now(),
            )
        except (KarimasuError, User.DoesNotExist) as error:
            raise CommandError(f"demo pipeline: {error}") from error
        self.stdout.write(f"pipeline {pipeline} (id {pipeline.pk}): /pipelines/{pipeline.pk}/")


def _learn_the_demo_nodes() -> None:
    """The demo cluster's nodes in the inventory, from a short-lived emulator of the same
    nodes as the one ``make run`` starts (its inventory sync then finds them there)."""
    import tempfile
    from pathlib import Path

    from kube_emulator import start_emulator
    from scheduler.cluster.kube import KubernetesBackend
    from scheduler.services.inventory import sync_inventory

    with tempfile.TemporaryDirectory(prefix="karimasu-demo-") as scratch:
        handle = start_emulator(kubeconfig_path=Path(scratch) / "kubeconfig")
        try:
            backend = KubernetesBackend.from_kubeconfig(str(handle.kubeconfig_path))
            sync_inventory(backend, now=timezone.now())
        finally:
            handle.close()
