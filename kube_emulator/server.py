"""HTTP front of the emulator: routes requests to :class:`~.api.Api`, writes JSON and streams.

HTTP/1.1 with keep-alive, as the official client (urllib3) expects. Watches and followed logs
use chunked transfer encoding; watch events are newline-delimited JSON. Every error is a JSON
``Status`` with the matching HTTP code. Only plain HTTP without authentication: the kubeconfig
the emulator writes points at ``http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import resources as r
from .api import Api, is_true
from .errors import ApiError, bad_request, method_not_allowed, unknown_path
from .nodes import KUBELET_VERSION
from .resources import resolve

logger = logging.getLogger(__name__)

_MAJOR, _MINOR = KUBELET_VERSION.removeprefix("v").split(".")[:2]
VERSION_INFO = {
    "major": _MAJOR,
    "minor": _MINOR,
    "gitVersion": f"{KUBELET_VERSION}-karimasu-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _discovery(path: str) -> dict[str, Any] | None:
    """The discovery documents clients may ask for (``/api``, ``/apis``, ``/api/v1``...)."""
    if path == "/version":
        return VERSION_INFO
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = []
        for name in ("batch", "apps"):
            version = {"groupVersion": f"{name}/v1", "version": "v1"}
            groups.append({"name": name, "versions": [version], "preferredVersion": version})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    for group_version, prefix in (
        ("v1", "/api/v1"),
        ("batch/v1", "/apis/batch/v1"),
        ("apps/v1", "/apis/apps/v1"),
    ):
        if path == prefix:
            served = [x for x in r.ALL if x.api_version == group_version]
            listed = [
                {
                    "name": x.plural,
                    "singularName": x.kind.lower(),
                    "namespaced": x.namespaced,
                    "kind": x.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                }
                for x in served
            ]
            return {"kind": "APIResourceList", "groupVersion": group_version, "resources": listed}
    return None


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can drop every open connection when it stops."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        self.api = api
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log instead of printing a traceback: clients drop idle keep-alive connections."""
        logger.debug("connection from %s ended abruptly", client_address, exc_info=True)

    def drop_connections(self) -> None:
        """End streams and close every client connection (the API server going away)."""
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)


class RequestHandler(BaseHTTPRequestHandler):
    """One HTTP request: parse, dispatch to the Api, write the answer."""

    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY each answer on a
    # keep-alive connection waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server_version = "karimasu-k8s-emulator"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
            if self.server.stopping.is_set():
                raise ApiError(503, "ServiceUnavailable", "the server is shutting down")
            self._dispatch(method, url.path.rstrip("/") or "/", query, body)
        except ApiError as error:
            self._send_json(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # the emulator must answer, never hang the client
            logger.exception("emulator error on %s %s", method, self.path)
            self._send_json(500, ApiError(500, "InternalError", f"emulator error: {exc}").status())

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            raise bad_request("the request body is not valid JSON") from None

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        api = self.server.api
        if path in ("/healthz", "/readyz", "/livez"):
            self._send_text(200, "ok")
            return
        document = _discovery(path)
        if document is not None and method == "GET":
            self._send_json(200, document)
            return
        target = resolve(path)
        if target.subresource == "log":
            if method != "GET":
                raise method_not_allowed(method)
            self._send_stream(api.log(target, query, self.server.stopping), "text/plain")
            return
        if method == "GET" and target.name is None:
            if is_true(query.get("watch")):
                events = api.watch(target, query, self.server.stopping)
                self._send_stream((json.dumps(e) + "\n" for e in events), "application/json")
            else:
                self._send_json(200, api.list(target, query))
        elif method == "GET":
            self._send_json(200, api.get(target))
        elif method == "POST":
            self._send_json(201, api.create(target, body))
        elif method == "PUT" and target.name is not None:
            self._send_json(200, api.replace(target, body))
        elif method == "PATCH" and target.name is not None:
            content_type = self.headers.get("Content-Type") or ""
            self._send_json(200, api.patch(target, content_type, body))
        elif method == "DELETE" and target.name is not None:
            self._send_json(200, api.delete(target, query, body))
        else:
            raise method_not_allowed(method) if target.name is None else unknown_path()

    def _send_json(self, code: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: Iterator[str], content_type: str) -> None:
        """Write ``chunks`` with chunked transfer encoding, flushing each one.

        Api.watch and Api.log check their parameters before returning the generator, so errors
        have already been answered as plain Status responses when this starts.
        """
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for chunk in chunks:
                self._write_chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # BrokenPipe, ConnectionReset: the client left or the server stops
            self.close_connection = True
        except Exception:  # headers are out: the only honest answer left is to hang up
            logger.exception("emulator stream failed on %s", self.path)
            self.close_connection = True

    def _write_chunk(self, chunk: str) -> None:
        data = chunk.encode()
        if not data:
            return
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
