"""The portal's way into a session's workspace: an ASGI router in front of Django.

``/s/<session id>/...`` (HTTP and WebSocket) is answered here; everything else goes to
Django's ASGI handler unchanged. For a session request:

1. **Who**: the Django session cookie (the browser), or ``Authorization: Bearer <token>``
   (clients), checked as Django and the API check them.
2. **May they**: ``scheduler.services.access.can_open_session`` (the session's owner
   only). Anyone else, and any id that is not a session, gets 403: the answer does not
   tell whether the session exists. Not signed in: 401 (a browser asking for a page is
   sent to the sign-in page).
3. **WebSocket origin**: a browser's WebSocket must come from the portal's own origin (the
   request's Host, or ``CSRF_TRUSTED_ORIGINS``), so another site cannot open the
   workspace's kernels with the user's cookie (cross-site WebSocket hijacking).
4. **Forward** to the Kubernetes API's pod proxy with the cluster's credentials: HTTP with
   ``httpx`` (the response streamed back), WebSocket with ``websockets`` (frames pumped
   both ways). The user's cookies and Authorization never leave the portal; a workspace's
   ``Set-Cookie`` is kept only for its own path and never for the portal's cookies.

The workspace serves under its portal path (``KARIMASU_BASE_URL=/s/<id>/``), so the path
is forwarded as it is: ``/s/7/lab`` -> ``.../pods/<pod>:<port>/proxy/s/7/lab``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.shortcuts import resolve_url
from django.utils import translation
from django.utils.translation import gettext, gettext_noop
from websockets.asyncio.client import connect as ws_connect

from scheduler.cluster import podproxy
from scheduler.cluster.backend import ClusterUnavailable
from scheduler.cluster.kube import ApiConnection

log = logging.getLogger("karimasu.sessions")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

T = TypeVar("T")

PREFIX = "/s/"
#: Request headers never forwarded: the user's credentials, the hop's own, the host.
DROPPED_REQUEST = frozenset(
    {
        "authorization",
        "cookie",
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "sec-websocket-protocol",
    }
)
DROPPED_RESPONSE = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "trailer", "upgrade", "content-length"}
)
#: Largest request body forwarded (uploads into a workspace).
MAX_BODY_BYTES = 64 * 1024 * 1024
POD_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Target:
    """A session the caller may open, and where its workspace listens."""

    session_id: int
    job_id: int
    attempt: int
    port: int


class Denied(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _headers(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]


def _header(scope: Scope, name: str) -> str | None:
    for key, value in _headers(scope):
        if key == name:
            return value
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for key, value in _headers(scope):
        if key == "cookie":
            with contextlib.suppress(CookieError):
                jar.load(value)
    return {name: morsel.value for name, morsel in jar.items()}


def _with_db(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` with Django's per-request connection handling (as its request_started and
    request_finished signals do): connections past their age or broken are closed."""

    def run(*args: Any) -> T:
        close_old_connections()
        try:
            return fn(*args)
        finally:
            close_old_connections()

    return run


def _authenticate(scope: Scope) -> tuple[Any, str]:
    """(user or None, "token" | "cookie" | ""). A bad Bearer token is 401, never a
    fallback to the cookie (as in the API)."""
    from django.utils import timezone

    from portal.accounts.services import authenticate_token, session_user

    authorization = _header(scope, "authorization")
    if authorization and authorization.lower().startswith("bearer "):
        token = authenticate_token(authorization[7:].strip(), now=timezone.now())
        if token is None:
            raise Denied(
                401, "authentication_failed", gettext_noop("Invalid, expired or revoked token.")
            )
        return token.user, "token"
    key = _cookies(scope).get(settings.SESSION_COOKIE_NAME)
    user = session_user(key) if key else None
    return (user, "cookie") if user is not None else (None, "")


def _language(scope: Scope, user: Any, via: str) -> str:
    """The language of an answer to this request (``portal.accounts.language``)."""
    from django.http import HttpRequest

    from portal.accounts.language import request_language

    request = HttpRequest()
    request.COOKIES = _cookies(scope)
    for name in ("accept-language", "authorization"):
        value = _header(scope, name)
        if value is not None:
            request.META["HTTP_" + name.upper().replace("-", "_")] = value
    return request_language(request, user, via=via)


def _authorize(user: Any, session_id: int) -> Target:
    from scheduler import states
    from scheduler.models import Session
    from scheduler.services.access import can_open_session

    session = Session.objects.select_related("job").filter(pk=session_id).first()
    if session is None or not can_open_session(user, session):
        raise Denied(
            403, "permission_denied", gettext_noop("Only the session's owner can open it.")
        )
    if session.job.status in (states.QUEUED, states.PREEMPTED):  # on demand, waiting
        raise Denied(
            503, "not_ready", gettext_noop("The session is queued for GPUs: try again later.")
        )
    if session.job.status not in states.ON_CLUSTER:
        raise Denied(409, "session_stopped", gettext_noop("This session has stopped."))
    return Target(session.pk, session.job_id, session.job.attempt, session.port)


def _origin_allowed(scope: Scope) -> bool:
    origin = _header(scope, "origin")
    if origin is None:
        return False
    host = _header(scope, "host") or ""
    parts = urlsplit(origin)
    if parts.netloc and parts.netloc.lower() == host.lower():
        return True
    trusted = {o.rstrip("/").lower() for o in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])}
    return origin.rstrip("/").lower() in trusted


def _parse(path: str) -> tuple[int, str] | None:
    """``/s/12/lab/tree`` -> (12, "lab/tree"); None when the id is not a number."""
    rest = path[len(PREFIX) :]
    head, _, tail = rest.partition("/")
    if not head.isdigit() or len(head) > 18:
        return None
    return int(head), tail


class SessionProxy:
    """ASGI: ``/s/...`` to the workspaces, the rest to ``app`` (Django)."""

    def __init__(self, app: Any) -> None:
        self.app: ASGIApp = app
        self._client: httpx.AsyncClient | None = None
        self._client_conn: ApiConnection | None = None
        self._pods: dict[tuple[int, int], tuple[str, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind in ("http", "websocket") and scope["path"].startswith(PREFIX):
            await self._session(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _session(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = scope["type"] == "websocket"
        parsed = _parse(scope["path"])
        user, how = None, ""
        try:
            if parsed is None:
                raise Denied(404, "not_found", gettext_noop("No such session."))
            session_id, rest = parsed
            if not rest and not scope["path"].endswith("/") and not websocket:
                await _redirect(send, f"{PREFIX}{session_id}/")
                return
            user, how = await sync_to_async(_with_db(_authenticate))(scope)
            if user is None:
                if not websocket and "text/html" in (_header(scope, "accept") or ""):
                    login = resolve_url(settings.LOGIN_URL)
                    await _redirect(send, f"{login}?next={quote(scope['path'])}")
                    return
                raise Denied(
                    401, "not_authenticated", gettext_noop("Sign in to open this session.")
                )
            target = await sync_to_async(_with_db(_authorize))(user, session_id)
            if websocket and how == "cookie" and not _origin_allowed(scope):
                raise Denied(
                    403, "bad_origin", gettext_noop("This WebSocket does not come from the portal.")
                )
            if websocket:
                await self._websocket(scope, receive, send, target)
            else:
                await self._http(scope, receive, send, target)
        except Denied as exc:
            # The message in the language of the request or of its user (the proxy is
            # outside Django's locale middleware); the code stays.
            language = await sync_to_async(_with_db(_language))(scope, user, how)
            with translation.override(language):
                exc.message = gettext(exc.message)
                page = None
                if not websocket and "text/html" in (_header(scope, "accept") or ""):
                    # A browser tab: a page saying why, with the way back (API clients,
                    # and the workspace's own scripts, get the JSON error).
                    page = _error_page(exc, parsed[0] if parsed else None)
            if websocket:
                await _deny_websocket(scope, receive, send, exc)
            elif page is not None:
                await _error(send, exc.status, exc.code, exc.message, page=page)
            else:
                await _error(send, exc.status, exc.code, exc.message)

    # --- upstream ----------------------------------------------------------------------

    def _connection(self) -> ApiConnection:
        try:
            return podproxy.connection()
        except ClusterUnavailable as exc:
            raise Denied(
                503, "cluster_unavailable", gettext_noop("The cluster cannot be reached.")
            ) from exc

    def _http_client(self, conn: ApiConnection) -> httpx.AsyncClient:
        if self._client is None or self._client_conn != conn:
            self._client = httpx.AsyncClient(
                headers=conn.headers,
                verify=podproxy.tls(conn) or True,
                timeout=httpx.Timeout(30.0, connect=5.0),
                follow_redirects=False,
            )
            self._client_conn = conn
        return self._client

    async def _pod(self, conn: ApiConnection, target: Target) -> str:
        key = (target.job_id, target.attempt)
        cached = self._pods.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        url = podproxy.pods_url(conn, settings.KARIMASU_JOBS_NAMESPACE, *key)
        try:
            answer = await self._http_client(conn).get(url)
            pod = podproxy.running_pod(answer.json()) if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise Denied(
                502, "upstream_error", gettext_noop("The cluster did not answer.")
            ) from exc
        if pod is None:
            raise Denied(
                503,
                "not_ready",
                gettext_noop("The workspace is not running yet: try again shortly."),
            )
        self._pods[key] = (pod, time.monotonic() + POD_CACHE_SECONDS)
        return pod

    async def _upstream_url(self, scope: Scope, target: Target) -> tuple[ApiConnection, str]:
        conn = self._connection()
        pod = await self._pod(conn, target)
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1").lstrip("/")
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            path = f"{path}?{query}"
        namespace = settings.KARIMASU_JOBS_NAMESPACE
        return conn, podproxy.proxy_url(conn, namespace, pod, target.port, path)

    async def _http(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        body = await _read_body(receive)
        conn, url = await self._upstream_url(scope, target)
        headers = [(k, v) for k, v in _headers(scope) if k not in DROPPED_REQUEST]
        client = self._http_client(conn)
        request = client.build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("session.upstream_failed session=%s %s", target.session_id, exc)
            raise Denied(
                502, "upstream_error", gettext_noop("The workspace did not answer.")
            ) from exc
        try:
            out = _response_headers(response.headers.multi_items(), target.session_id)
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except httpx.HTTPError as exc:  # the upstream broke off mid-body: end ours too
            log.warning("session.upstream_broke session=%s %s", target.session_id, exc)
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        conn, url = await self._upstream_url(scope, target)
        headers = [(k, v) for k, v in _headers(scope) if k not in DROPPED_REQUEST | {"origin"}]
        protocols = [websockets.Subprotocol(p) for p in scope.get("subprotocols") or []]
        try:
            upstream = await ws_connect(
                podproxy.websocket_url(url),
                additional_headers=[*conn.headers.items(), *headers],
                subprotocols=protocols or None,
                ssl=podproxy.tls(conn),
                open_timeout=10,
                max_size=16 * 1024 * 1024,
                compression=None,
            )
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            log.warning("session.ws_upstream_failed session=%s %s", target.session_id, exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        await _pump(receive, send, upstream)


async def _pump(receive: Receive, send: Send, upstream: Any) -> None:
    """Frames both ways until either side closes; then close the other."""

    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])

    async def upstream_to_client() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in upstream:
                if isinstance(frame, bytes):
                    await send({"type": "websocket.send", "bytes": frame})
                else:
                    await send({"type": "websocket.send", "text": frame})

    tasks = [
        asyncio.ensure_future(client_to_upstream()),
        asyncio.ensure_future(upstream_to_client()),
    ]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            if task is tasks[1]:  # the workspace closed: close the browser's end
                code = upstream.close_code or 1000
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": code})
    finally:
        await upstream.close()


def _response_headers(items: list[tuple[str, str]], session_id: int) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in items:
        name = key.lower()
        if name in DROPPED_RESPONSE:
            continue
        if name == "set-cookie" and not _cookie_allowed(value, session_id):
            continue
        out.append((name.encode("latin-1"), value.encode("latin-1")))
    return out


def _cookie_allowed(header: str, session_id: int) -> bool:
    """A workspace may set cookies for its own path only, and never the portal's."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return False
    portal = {
        settings.SESSION_COOKIE_NAME,
        settings.CSRF_COOKIE_NAME,
        settings.LANGUAGE_COOKIE_NAME,
    }
    own = f"{PREFIX}{session_id}/"
    for name, morsel in jar.items():
        path = morsel["path"] or ""
        if name in portal or morsel["domain"] or not (path + "/").startswith(own):
            return False
    return bool(jar)


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Denied(400, "disconnected", gettext_noop("The client went away."))
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Denied(413, "payload_too_large", gettext_noop("The request body is too large."))
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _error_page(exc: Denied, session_id: int | None) -> bytes:
    """The HTML a browser gets for ``exc`` (in the active language; the template escapes)."""
    from django.template.loader import render_to_string

    context = {"code": exc.code, "message": exc.message, "session_id": session_id}
    return render_to_string("scheduler/session_unavailable.html", context).encode()


async def _error(
    send: Send, status: int, code: str, message: str, *, page: bytes | None = None
) -> None:
    body = page
    kind = b"text/html; charset=utf-8"
    if body is None:
        body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
        kind = b"application/json"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"2"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _deny_websocket(scope: Scope, receive: Receive, send: Send, exc: Denied) -> None:
    """Refuse the handshake with the HTTP status and the JSON error where the server offers
    ASGI's denial response (uvicorn does), else with a close before accept (HTTP 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = json.dumps({"error": {"code": exc.code, "message": exc.message, "details": {}}})
        await send(
            {
                "type": "websocket.http.response.start",
                "status": exc.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body.encode()})
        return
    await send({"type": "websocket.close", "code": 4000 + exc.status})
