"""The node token: `Authorization: Bearer kmn_...`, accepted by the telemetry ingest only.

Everywhere else the project's user-token authenticator rejects it (401), so a node token
can do nothing but post telemetry; here a user token is rejected the same way.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from portal.accounts.authentication import bearer_token
from scheduler.telemetry import services
from scheduler.telemetry.models import NodeToken


class NodeAgent:
    """The principal of a node token (not a user)."""

    is_authenticated = True
    is_staff = False
    pk = None

    def __init__(self, token: NodeToken) -> None:
        self.token = token
        self.node = token.node

    def __str__(self) -> str:
        return f"node-agent:{self.node.name}"


class NodeTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[NodeAgent, NodeToken]:
        plaintext = bearer_token(request)
        if plaintext is None:
            raise exceptions.NotAuthenticated(_("A node token is required: 'Bearer kmn_...'."))
        token = services.authenticate_node_token(plaintext, now=timezone.now())
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked node token."))
        return NodeAgent(token), token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="karimasu-telemetry"'


class IsNodeAgent(permissions.BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        return isinstance(request.auth, NodeToken)


class NodeTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "scheduler.telemetry.api.authentication.NodeTokenAuthentication"
    name = "nodeTokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A node agent's token (kmn_...), valid for telemetry only.",
        }
