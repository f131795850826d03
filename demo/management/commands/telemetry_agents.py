"""`manage.py telemetry_agents`: simulated node agents for the demo, one thread per GPU node.

Waits for the emulator's kubeconfig and the synced inventory, gives every GPU node a fresh
node token (revoking its earlier ones), then runs the real agent loop with the simulated
source for each node, posting over HTTP to the portal like a DaemonSet pod would. Nodes that
join later are not picked up until a restart.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from nodeagent.agent import Agent, HttpSender
from nodeagent.simulated import SimulatedSource
from scheduler.models import Node
from scheduler.telemetry import services


class Command(BaseCommand):
    help = "Run simulated GPU node agents (demo) against the Kubernetes emulator."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--portal", default="http://127.0.0.1:8000")
        parser.add_argument("--kubeconfig", default="var/kubeconfig")
        parser.add_argument("--interval", type=float, default=10.0)
        parser.add_argument(
            "--wait", type=float, default=0.0, help="seconds to wait for setup (0: forever)"
        )
        parser.add_argument("--once", action="store_true", help="one round per node, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        nodes = self._wait(Path(options["kubeconfig"]), options["wait"])
        agents = []
        for node in nodes:
            now = timezone.now()
            created, token = services.create_node_token(node, now=now)
            services.revoke_node_tokens(node, now=now, keep=created)
            source = SimulatedSource(node.name, kubeconfig=options["kubeconfig"])
            sender = HttpSender(options["portal"], token)
            agents.append(Agent(source, node.name, sender, interval=options["interval"]))
        self.stdout.write(f"telemetry agents for {', '.join(n.name for n in nodes)}")
        if options["once"]:
            for agent in agents:
                agent.tick()
            return
        stop = threading.Event()
        threads = [threading.Thread(target=a.run, args=(stop,), daemon=True) for a in agents]
        for thread in threads:
            thread.start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            stop.set()

    def _wait(self, kubeconfig: Path, seconds: float) -> list[Node]:
        deadline = time.monotonic() + seconds
        while True:
            nodes = list(Node.objects.filter(gone_at__isnull=True, gpu_capacity__gt=0))
            if kubeconfig.exists() and nodes:
                return nodes
            if seconds and time.monotonic() > deadline:
                raise CommandError(f"no {kubeconfig} or no GPU nodes synced after {seconds} s")
            time.sleep(2)
