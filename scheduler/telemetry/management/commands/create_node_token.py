"""`manage.py create_node_token NODE [--revoke-others]`: print a new node token once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from scheduler.models import Node
from scheduler.telemetry import services


class Command(BaseCommand):
    help = "Create a telemetry token for a GPU node's agent and print it (shown only once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("node", help="the Kubernetes node name")
        parser.add_argument(
            "--revoke-others", action="store_true", help="revoke the node's earlier tokens"
        )

    def handle(self, *args: Any, node: str, revoke_others: bool, **options: Any) -> None:
        found = Node.objects.filter(name=node).first()
        if found is None:
            raise CommandError(f"No node {node!r}; sync the cluster inventory first.")
        now = timezone.now()
        if revoke_others:
            services.revoke_node_tokens(found, now=now)
        _, plaintext = services.create_node_token(found, now=now)
        self.stdout.write(plaintext)
