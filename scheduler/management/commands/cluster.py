"""`manage.py cluster sync|emulate` — the cluster layer by hand.

cluster sync                      inventory + reconcile once, print what changed
cluster emulate [--port 0] [--nodes-file F] [--kubeconfig PATH]
                                  run the Kubernetes API emulator (tests, demo)
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from scheduler.cluster.backend import ClusterUnavailable
from scheduler.cluster.factory import cluster_backend
from scheduler.cluster.kube import KubernetesBackend
from scheduler.services.inventory import sync_inventory
from scheduler.services.reconcile import reconcile
from scheduler.services.watch import ClusterWatcher


class Command(BaseCommand):
    help = "Cluster layer: sync inventory and reconcile jobs, or run the API emulator."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("sync", help="Sync nodes/GPUs and reconcile jobs once.")
        sub.add_parser("watch", help="Watch Jobs and Pods; reconcile on every change.")
        emulate = sub.add_parser("emulate", help="Run the Kubernetes API emulator.")
        emulate.add_argument("--host", default="127.0.0.1")
        emulate.add_argument("--port", type=int, default=0, help="0 picks a free port.")
        emulate.add_argument(
            "--nodes-file",
            default=None,
            help="YAML list of nodes (default: 4 nodes x 2 Tesla V100).",
        )
        emulate.add_argument(
            "--kubeconfig",
            default=str(settings.VAR_DIR / "kubeconfig"),
            help="Where to write a kubeconfig pointing at the emulator.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "sync":
            self._sync()
        elif options["action"] == "watch":
            self._watch()
        else:
            self._emulate(options)

    def _sync(self) -> None:
        try:
            backend = cluster_backend()
            now = timezone.now()
            inventory = sync_inventory(backend, now=now)
        except ClusterUnavailable as exc:
            raise CommandError(f"cluster unavailable: {exc}") from exc
        result = reconcile(backend, now=now)
        if result.unavailable:
            raise CommandError("cluster became unavailable during reconcile; nothing changed")
        self.stdout.write(
            json.dumps(
                {
                    "nodes": inventory.nodes,
                    "appeared": inventory.appeared,
                    "gone": inventory.gone,
                    "changed": inventory.changed,
                    "submitted": result.submitted,
                    "updated": result.updated,
                    "lost": result.lost,
                    "orphans_deleted": result.orphans_deleted,
                }
            )
        )

    def _watch(self) -> None:
        stop = _stop_on_signals()

        def on_change() -> None:
            # Re-read the configuration each pass: the demo's kubeconfig may appear late.
            try:
                backend = cluster_backend()
                now = timezone.now()
                sync_inventory(backend, now=now)
                reconcile(backend, now=now)
            except ClusterUnavailable as exc:
                self.stderr.write(f"cluster unavailable: {exc}")

        while not stop.is_set():
            try:
                backend = cluster_backend()
            except ClusterUnavailable as exc:
                self.stderr.write(f"waiting for the cluster: {exc}")
                stop.wait(2)
                continue
            self.stdout.write(f"watching namespace {settings.KARIMASU_JOBS_NAMESPACE}")
            ClusterWatcher(backend, on_change).run(stop)

    def _emulate(self, options: dict[str, Any]) -> None:
        from kube_emulator import start_emulator

        # Before anything is announced: a SIGTERM right after the URL is printed must still
        # stop the emulator cleanly (exit 0), not kill the process.
        stop = _stop_on_signals()
        kubeconfig = Path(options["kubeconfig"])
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        handle = start_emulator(
            host=options["host"],
            port=options["port"],
            nodes_file=options["nodes_file"],
            kubeconfig_path=str(kubeconfig),
        )
        backend = KubernetesBackend.from_kubeconfig(
            str(kubeconfig), namespace=settings.KARIMASU_JOBS_NAMESPACE
        )
        backend.ensure_namespace()
        self.stdout.write(f"Kubernetes API emulator at {handle.url}", ending="\n")
        self.stdout.write(f"kubeconfig written to {kubeconfig}", ending="\n")
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            handle.close()


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (honcho and Ctrl-C), for a clean exit."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
