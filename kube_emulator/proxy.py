"""The ``pods/proxy`` subresource: HTTP and WebSocket to a Pod run as a local process.

``/api/v1/namespaces/{ns}/pods/{name}[:{port}]/proxy[/{path}]`` (also ``http:{name}:{port}``),
any of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, as the real API server serves it:

- the port must be one of the Pod's declared TCP ``containerPort``s (without one: the first
  declared port, as upstream picks); any other is a 400, so no client reaches an arbitrary
  local port through the emulator. The declared port maps onto the local port the kubelet
  gave the process (:mod:`.processes`);
- the path is percent-decoded (clients escape ``/`` and ``:`` in path parameters, as the
  official client does), ``.`` and ``..`` segments are a 400, and it is forwarded re-escaped
  with the query string as sent;
- hop-by-hop headers (``Connection`` and what it names, ``Keep-Alive``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``, ``Proxy-*``) and ``Authorization`` (the API server drops
  its credentials once it has authenticated) are not forwarded; ``Host`` is the backend's;
- bodies are streamed both ways (``Content-Length`` or chunked in; the answer as framed by
  the backend, re-chunked when it has no length);
- ``Upgrade`` (WebSocket) requests are relayed as raw bytes both ways after the request
  line and headers, until either side closes (half-close passed on) or nothing moves for
  :data:`IDLE_SECONDS`;
- a missing Pod is a 404 ``Status``; a Pod not Running, or running no process that listens,
  is a 503 ``Status``; a malformed request (both ``Content-Length`` and
  ``Transfer-Encoding``, a header with a line break, an absolute URL) is a 400.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from . import resources as r
from .errors import ApiError, bad_request, method_not_allowed, not_found
from .processes import declared_ports

if TYPE_CHECKING:
    from .server import RequestHandler

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

PROXY_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/proxy(/.*)?$")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
CONNECT_SECONDS = 5.0
READ_SECONDS = 300.0  # a backend silent this long ends the answer (hang up)
IDLE_SECONDS = 3600.0  # a relayed WebSocket with no byte either way this long is closed
HALF_CLOSE_SECONDS = 30.0  # after one side ends, how long the other may still send
CHUNK = 65536
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = frozenset({"authorization", "host", "content-length", "expect"})
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


@dataclass(frozen=True)
class ProxyTarget:
    namespace: str
    name: str
    port: int | None
    path: str  # decoded, starting with "/"


def is_proxy_path(raw_path: str) -> bool:
    return PROXY_PATH.match(urlsplit(raw_path).path) is not None


def parse(raw_path: str) -> ProxyTarget:
    """The Pod, port and path a proxy URL names; 400 for a malformed one."""
    if not raw_path.startswith("/"):
        raise bad_request("the proxy takes a path, not an absolute URL")
    match = PROXY_PATH.match(urlsplit(raw_path).path)
    if match is None:
        raise bad_request("not a pod proxy path")
    namespace, name_port, tail = (unquote(match.group(1)), unquote(match.group(2)), match[3])
    parts = name_port.split(":")
    if len(parts) == 3:
        scheme, name, port = parts
        if scheme not in ("", "http"):
            raise bad_request(f"the emulator's pod proxy speaks plain HTTP only, not {scheme!r}")
    elif len(parts) == 2:
        name, port = parts
    elif len(parts) == 1:
        name, port = parts[0], ""
    else:
        raise bad_request(f"invalid pod proxy name {name_port!r}")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise bad_request(f"invalid port {port!r}: the emulator proxies numeric ports only")
    path = unquote(tail or "/")
    segments = path.split("/")
    if any(s in (".", "..") for s in segments) or any(c in path for c in "\r\n\x00\\"):
        raise bad_request("the proxy path may not contain '.' or '..' segments or control bytes")
    return ProxyTarget(namespace, name, int(port) if port else None, path)


def _unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def backend_port(handler: RequestHandler, target: ProxyTarget) -> int:
    """The local port to forward to; 404 (no Pod), 400 (undeclared port), 503 (not serving)."""
    api = handler.server.api
    with api.store.lock:
        pod = api.store.find(r.PODS, target.namespace, target.name)
    if pod is None:
        raise not_found("pods", "", target.name)
    ports = declared_ports(pod)
    port = target.port if target.port is not None else (ports[0] if ports else None)
    if port is None:
        raise bad_request(f'pod "{target.name}" declares no containerPort to proxy to')
    if port not in ports:
        raise bad_request(
            f'port {port} is not a containerPort of pod "{target.name}" '
            f"(declared: {', '.join(map(str, ports))})"
        )
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise _unavailable(f'pod "{target.name}" is not running (phase {phase})')
    local = api.controller.kubelet.processes.local_port(pod["metadata"]["uid"], port)
    if local is None:
        ip = (pod.get("status") or {}).get("podIP", "")
        raise _unavailable(
            f"error trying to reach service: dial tcp {ip}:{port}: connect: connection refused"
            " (the emulator serves the proxy only for Pods run as a local process)"
        )
    return local


def _header_items(handler: RequestHandler, *, upgrade: bool) -> list[tuple[str, str]]:
    """The request headers to forward (hop-by-hop dropped, save an upgrade's own)."""
    named = {
        token.strip().lower()
        for value in handler.headers.get_all("Connection") or []
        for token in value.split(",")
    }
    kept: list[tuple[str, str]] = []
    for key, value in handler.headers.items():
        if "\r" in value or "\n" in value or "\r" in key or "\n" in key:
            raise bad_request(f"invalid value in header {key!r}")
        lower = key.lower()
        if lower in NOT_FORWARDED:
            continue
        if lower in HOP_BY_HOP or lower in named:
            if upgrade and lower == "upgrade":
                kept.append((key, value))
            continue
        kept.append((key, value))
    if upgrade:
        kept.append(("Connection", "Upgrade"))
    return kept


def _wants_upgrade(handler: RequestHandler) -> bool:
    connection = ",".join(handler.headers.get_all("Connection") or []).lower()
    tokens = {t.strip() for t in connection.split(",")}
    return "upgrade" in tokens and bool(handler.headers.get("Upgrade"))


def _body_framing(handler: RequestHandler) -> tuple[int, bool]:
    """(Content-Length, chunked) of the request body; 400 when ambiguous (smuggling)."""
    lengths = handler.headers.get_all("Content-Length") or []
    encodings = handler.headers.get_all("Transfer-Encoding") or []
    if lengths and encodings:
        raise bad_request("a request may not have both Content-Length and Transfer-Encoding")
    if encodings:
        if [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
            raise bad_request("only Transfer-Encoding: chunked is accepted")
        return 0, True
    if len(set(lengths)) > 1:
        raise bad_request("conflicting Content-Length headers")
    if lengths:
        text = lengths[0].strip()
        if not (text.isascii() and text.isdigit()):
            raise bad_request(f"invalid Content-Length {text!r}")
        return int(text), False
    return 0, False


def _read_chunks(rfile: Any) -> Any:
    """The decoded chunks of a chunked request body (trailers read and dropped)."""
    while True:
        line = rfile.readline(1024)
        size_text = line.split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise bad_request("malformed chunked request body") from None
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return
        remaining = size
        while remaining:
            data = rfile.read(min(remaining, CHUNK))
            if not data:
                raise bad_request("truncated chunked request body")
            remaining -= len(data)
            yield data
        rfile.readline(1024)


def _forward_path(handler: RequestHandler, target: ProxyTarget) -> str:
    query = urlsplit(handler.path).query
    path = quote(target.path, safe=_PATH_SAFE)
    return f"{path}?{query}" if query else path


def serve(handler: RequestHandler, method: str) -> None:
    """Answer one proxy request on ``handler`` (errors as ``Status``, 4xx/503)."""
    if method not in METHODS:
        raise method_not_allowed(method)
    target = parse(handler.path)
    local = backend_port(handler, target)
    upgrade = _wants_upgrade(handler)
    headers = _header_items(handler, upgrade=upgrade)
    length, chunked = _body_framing(handler)
    if upgrade:
        _relay_upgrade(handler, method, _forward_path(handler, target), headers, local, length)
    else:
        _forward(handler, method, _forward_path(handler, target), headers, local, length, chunked)


def _forward(
    handler: RequestHandler,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    local: int,
    length: int,
    chunked: bool,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", local, timeout=CONNECT_SECONDS)
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise _unavailable(
                f"error trying to reach service: dial tcp 127.0.0.1:{local}: {exc}"
            ) from None
        assert conn.sock is not None
        conn.sock.settimeout(READ_SECONDS)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{local}")
        for key, value in headers:
            conn.putheader(key, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif length or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(length))
        conn.endheaders()
        try:
            if chunked:
                for data in _read_chunks(handler.rfile):
                    conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                remaining = length
                while remaining:
                    data = handler.rfile.read(min(remaining, CHUNK))
                    if not data:
                        raise bad_request("the request body ended early")
                    remaining -= len(data)
                    conn.send(data)
            response = conn.getresponse()
        except ApiError:
            handler.close_connection = True
            raise
        except OSError as exc:
            handler.close_connection = True
            raise _unavailable(f"error trying to reach service: {exc}") from None
        _answer(handler, method, response)
    finally:
        conn.close()


def _answer(handler: RequestHandler, method: str, response: http.client.HTTPResponse) -> None:
    """Write the backend's answer to the client, its body streamed."""
    named = {
        token.strip().lower()
        for value in response.headers.get_all("Connection") or []
        for token in value.split(",")
    }
    handler.send_response_only(response.status, response.reason)
    for key, value in response.headers.items():
        lower = key.lower()
        if lower in HOP_BY_HOP or lower in named or lower == "content-length":
            continue
        handler.send_header(key, value)
    no_body = method == "HEAD" or response.status in (204, 304) or response.status < 200
    if no_body:
        declared = (response.headers.get("Content-Length") or "").strip()
        if method == "HEAD" and declared.isascii() and declared.isdigit():
            handler.send_header("Content-Length", declared)
        handler.end_headers()
        return
    # http.client's reading of the framing: a length only when valid and not chunked.
    framed = response.length is not None and not response.chunked
    if framed:
        handler.send_header("Content-Length", str(response.length))
    else:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.wfile.flush()
    try:
        while True:
            data = response.read1(CHUNK)
            if not data:
                break
            if framed:
                handler.wfile.write(data)
            else:
                handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()
        if not framed:
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        if response.length:  # the backend hung up before its Content-Length
            handler.close_connection = True
    except (OSError, http.client.HTTPException):
        # Headers are out: the only honest answer left is to hang up.
        handler.close_connection = True


def _relay_upgrade(
    handler: RequestHandler,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    local: int,
    length: int,
) -> None:
    """Send the upgrade request to the backend, then relay raw bytes both ways."""
    try:
        backend = socket.create_connection(("127.0.0.1", local), timeout=CONNECT_SECONDS)
    except OSError as exc:
        raise _unavailable(
            f"error trying to reach service: dial tcp 127.0.0.1:{local}: {exc}"
        ) from None
    handler.close_connection = True  # the connection is the relay's now
    server = handler.server
    server.track(backend)
    try:
        backend.settimeout(IDLE_SECONDS)
        handler.connection.settimeout(IDLE_SECONDS)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{local}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if length:
            lines.append(f"Content-Length: {length}")
        backend.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if length:
            backend.sendall(handler.rfile.read(length))
        upstream = threading.Thread(
            target=_pump,
            args=(handler.rfile.read1, backend),
            name=f"pod-proxy-relay-{local}",
            daemon=True,
        )
        upstream.start()
        _pump(backend.recv, handler.connection)
        upstream.join(HALF_CLOSE_SECONDS)
        if upstream.is_alive():
            for sock in (backend, handler.connection):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            upstream.join(CONNECT_SECONDS)
    finally:
        server.untrack(backend)
        backend.close()


def _pump(read: Callable[[int], bytes], destination: socket.socket) -> None:
    """Copy bytes until the source ends, then half-close the destination's sending side."""
    try:
        while True:
            data = read(CHUNK)
            if not data:
                break
            destination.sendall(data)
    except (OSError, ValueError):  # reset, timeout, or a file closed under the reader
        pass
    finally:
        with contextlib.suppress(OSError):
            destination.shutdown(socket.SHUT_WR)
