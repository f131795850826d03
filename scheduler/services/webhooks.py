"""Team webhooks: which targets are allowed, and posting to one without SSRF.

A webhook URL is a credential (whoever has it can post to the team's channel) and its target
is chosen by a team lead, so the worker must not become a way to reach internal services.
The rule, checked when a lead saves the URL and again at every send:

- `https://` only, no user info in the URL;
- the host is resolved and *every* address it answers must be public (not loopback,
  private, link-local such as 169.254.169.254, multicast, reserved, or IPv4 inside IPv6);
- unless an admin listed the host in `KARIMASU_WEBHOOK_ALLOWED_HOSTS` (then http and any
  address are allowed: an on-prem chat server).

At send time the connection goes to the address that was just checked (the name is not
resolved a second time by the HTTP library), so DNS rebinding between the check and the
connect cannot reach an internal address. Redirects are not followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

log = logging.getLogger("karimasu.notify")

WEBHOOK_TIMEOUT_S = 5


# A seam for the tests: socket.getaddrinfo(host, port) restricted to TCP.
def getaddrinfo(host: str, port: int) -> list[Any]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class WebhookRefused(ValueError):
    """The URL or its target is not allowed; the message says why (translated)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked IP to connect to


def allowed_hosts() -> set[str]:
    return {h.strip().lower() for h in getattr(settings, "KARIMASU_WEBHOOK_ALLOWED_HOSTS", [])}


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (
        ip.ipv4_mapped is not None or ip.sixtofour is not None or ip.teredo is not None
    ):
        return False  # IPv4 inside IPv6: judged unsafe rather than unwrapped
    return ip.is_global and not ip.is_multicast


def check(url: str) -> Target:
    """Resolve and check `url`; returns where to connect, or raises WebhookRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(_("Not a valid URL.")) from exc
    host = (parts.hostname or "").lower()
    allowed = host in allowed_hosts()
    schemes = ("https", "http") if allowed else ("https",)
    if parts.scheme not in schemes:
        raise WebhookRefused(_("The webhook must be an https:// URL."))
    if not host:
        raise WebhookRefused(_("The URL has no host."))
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused(_("The URL must not contain a user name or password."))
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        answers = getaddrinfo(host, port)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused(_("The webhook's host name does not resolve.")) from exc
    addresses = [str(answer[4][0]) for answer in answers]
    if not addresses:
        raise WebhookRefused(_("The webhook's host name does not resolve."))
    if not allowed and not all(is_public(a) for a in addresses):
        raise WebhookRefused(
            _(
                "The webhook's host resolves to an internal address; ask an admin to allow "
                "the host if this is intended."
            )
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        self._ssl = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._ssl)
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl.wrap_socket(raw, server_hostname=self.host)


def post_webhook(url: str, text: str) -> bool:
    """POST Slack's `{"text": ...}` to a checked webhook; False (logged) on any failure."""
    try:
        target = check(url)
    except WebhookRefused as exc:
        log.warning("notify.webhook_refused host of %r: %s", url[:30], exc)
        return False
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, WEBHOOK_TIMEOUT_S)
    body = json.dumps({"text": text}).encode()
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={"Content-Type": "application/json", "Host": host_header},
        )
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        log.warning("notify.webhook_failed %s", exc)
        return False
    finally:
        connection.close()
    return 200 <= status < 300


def mask(url: str) -> str:
    """What a team member who is not a lead sees of the webhook: scheme and host only."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"
