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

import yaml

from . import gnostic, openapi, protobuf, proxy, tables
from . import resources as r
from .api import Api, is_true, note_duplicates
from .errors import (
    ApiError,
    bad_request,
    method_not_allowed,
    not_acceptable,
    unknown_path,
    unsupported_media_type,
)
from .nodes import KUBELET_VERSION
from .patches import APPLY, PATCH_TYPES
from .protobuf import ProtobufError
from .resources import Target, resolve

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


#: What discovery says of each served resource, as upstream (kubectl's short names, ``all``).
SHORT_NAMES = {
    "nodes": ["no"],
    "namespaces": ["ns"],
    "pods": ["po"],
    "events": ["ev"],
    "daemonsets": ["ds"],
    "services": ["svc"],
}
CATEGORIES = {"pods": ["all"], "jobs": ["all"], "daemonsets": ["all"], "services": ["all"]}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "log": ["get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
}
SUBRESOURCE_KINDS = {"log": "Pod", "proxy": "PodProxyOptions"}
JSON, YAML = "application/json", "application/yaml"
BODY_TYPES = (JSON, YAML)
PROTOBUF = "application/vnd.kubernetes.protobuf"
#: kubectl auth can-i asks this; the emulator has no authorization: everything is allowed.
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
AUTHORIZATION_VERSION = "authorization.k8s.io/v1"
AUTHORIZATION: dict[str, Any] = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": AUTHORIZATION_VERSION,
    "resources": [
        {
            "name": "selfsubjectaccessreviews",
            "singularName": "selfsubjectaccessreview",
            "namespaced": False,
            "kind": "SelfSubjectAccessReview",
            "verbs": ["create"],
        }
    ],
}


def _group_versions() -> list[str]:
    return sorted({x.api_version for x in r.ALL if x.group})


def _group(group_version: str) -> dict[str, Any]:
    name, version = group_version.split("/")
    entry = {"groupVersion": group_version, "version": version}
    return {"name": name, "versions": [entry], "preferredVersion": entry}


def _resource_list(group_version: str) -> dict[str, Any]:
    listed: list[dict[str, Any]] = []
    for x in (x for x in r.ALL if x.api_version == group_version):
        entry: dict[str, Any] = {
            "name": x.plural,
            "singularName": x.kind.lower(),
            "namespaced": x.namespaced,
            "kind": x.kind,
            "verbs": VERBS,
        }
        if x.plural in SHORT_NAMES:
            entry["shortNames"] = SHORT_NAMES[x.plural]
        if x.plural in CATEGORIES:
            entry["categories"] = CATEGORIES[x.plural]
        listed.append(entry)
        for sub in x.subresources:
            listed.append(
                {
                    "name": f"{x.plural}/{sub}",
                    "singularName": "",
                    "namespaced": x.namespaced,
                    "kind": SUBRESOURCE_KINDS.get(sub, x.kind),
                    "verbs": SUBRESOURCE_VERBS[sub],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": listed,
    }


def _discovery(path: str) -> dict[str, Any] | None:
    """The discovery documents clients may ask for (``/api``, ``/apis``, ``/api/v1``...).

    Aggregated discovery (``as=APIGroupDiscoveryList``) is not offered: the answer is the
    legacy document with ``Content-Type: application/json``, from which kubectl and client-go
    fall back to the per-group documents, as with a server that has it turned off.
    """
    if path == "/version":
        return VERSION_INFO
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = [_group(gv) for gv in [*_group_versions(), AUTHORIZATION_VERSION]]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    if path == "/api/v1":
        return _resource_list("v1")
    if path == "/apis/authorization.k8s.io/v1":
        return AUTHORIZATION
    if path == "/apis/authorization.k8s.io":
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(AUTHORIZATION_VERSION)}
    for group_version in _group_versions():
        if path == f"/apis/{group_version.split('/')[0]}":
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(group_version)}
        if path == f"/apis/{group_version}":
            return _resource_list(group_version)
    return None


def _access_review(body: Any) -> dict[str, Any]:
    """A SelfSubjectAccessReview answered: allowed (the emulator has no authorization)."""
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise bad_request("a SelfSubjectAccessReview needs a spec")
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": body["spec"],
        "status": {"allowed": True, "reason": "the emulator authorizes every request"},
    }


def _media_ranges(header: str | None) -> list[tuple[str, dict[str, str]]]:
    ranges = []
    for part in (header or "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if media:
            values = dict(p.split("=", 1) for p in params if "=" in p)
            ranges.append((media.lower(), {k.strip(): v.strip() for k, v in values.items()}))
    return ranges


def negotiate(accept: str | None) -> str:
    """The media type to answer in (JSON or YAML) for an ``Accept`` header; 406 if none.

    Ranges asking for another representation (``as=Table``, ``as=APIGroupDiscoveryList``,
    protobuf) are skipped, as the real server skips what it cannot serve, so a client that
    lists JSON after them gets JSON.
    """
    ranges = _media_ranges(accept)
    if not ranges:
        return JSON
    for media, params in ranges:
        if "as" in params:
            continue
        if media in (JSON, "*/*", "application/*"):
            return JSON
        if media == YAML:
            return YAML
    raise not_acceptable(BODY_TYPES)


def negotiate_openapi_v2(accept: str | None) -> str:
    """JSON or gnostic protobuf for ``/openapi/v2``: the first range of ``Accept`` (in its
    order; q-values are not weighed, as in :func:`negotiate`) that either matches, ``*/*``
    being JSON, as kube-openapi's handler picks; 406 if none does. Protobuf is
    answered as ``...spec.v2.v1.0+protobuf`` whichever spelling was asked for, as upstream
    does: Go's ``mime.ParseMediaType`` (client-go reading the answer) rejects the ``@``."""
    ranges = _media_ranges(accept)
    if not ranges:
        return JSON
    for media, _ in ranges:
        if media in (JSON, "*/*", "application/*"):
            return JSON
        if media in gnostic.MEDIA_TYPES:
            return gnostic.CONTENT_TYPE
    raise not_acceptable((JSON, *gnostic.MEDIA_TYPES))


def decode_body(method: str, content_type: str, raw: bytes) -> Any:
    """Parse a request body by its ``Content-Type``; 415 for a format the emulator lacks."""
    media = content_type.split(";")[0].strip().lower()
    if method == "PATCH":
        if media not in PATCH_TYPES:
            raise unsupported_media_type(PATCH_TYPES)
    elif media == PROTOBUF:
        try:
            return protobuf.decode(raw)
        except ProtobufError:
            raise unsupported_media_type(BODY_TYPES) from None
    elif media not in ("", *BODY_TYPES):
        raise unsupported_media_type(BODY_TYPES)
    try:
        if media in (YAML, APPLY):
            return yaml.safe_load(raw)
        return json.loads(raw, object_pairs_hook=note_duplicates)
    except (ValueError, yaml.YAMLError):
        raise bad_request(
            "the request body is not valid JSON"
            if media != YAML
            else "the request body is not valid YAML"
        ) from None


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

    def track(self, sock: socket.socket) -> None:
        """Also shut ``sock`` (a pod proxy's backend connection) down when the server stops."""
        with self._connections_lock:
            self._connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(sock)

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
    _warnings: list[str]
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

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def _handle(self, method: str) -> None:
        if proxy.is_proxy_path(self.path):
            self._proxy(method)
            return
        if method in ("HEAD", "OPTIONS"):
            self._media = JSON
            self._warnings = []
            data = json.dumps(method_not_allowed(method).status()).encode()
            self._send_bytes(405, data, JSON, body=method != "HEAD")
            return
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self._media = JSON
        self._warnings = []
        try:
            raw = self._read_body()
            if self.server.stopping.is_set():
                raise ApiError(503, "ServiceUnavailable", "the server is shutting down")
            path = url.path.rstrip("/") or "/"
            if path in ("/healthz", "/readyz", "/livez"):
                self._send_text(200, "ok")
                return
            if path.startswith("/openapi/"):
                self._openapi(method, path)
                return
            self._media = negotiate(self.headers.get("Accept"))
            body = None
            if raw:
                body = decode_body(method, self.headers.get("Content-Type") or "", raw)
            self._dispatch(method, path, query, body)
        except ApiError as error:
            self._send_json(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # the emulator must answer, never hang the client
            logger.exception("emulator error on %s %s", method, self.path)
            self._send_json(500, ApiError(500, "InternalError", f"emulator error: {exc}").status())

    def _proxy(self, method: str) -> None:
        """``pods/{name}[:{port}]/proxy[/{path}]``: see :mod:`.proxy`."""
        self._media = JSON
        self._warnings = []
        try:
            if self.server.stopping.is_set():
                raise ApiError(503, "ServiceUnavailable", "the server is shutting down")
            proxy.serve(self, method)
        except ApiError as error:
            self.close_connection = True  # the request body may be unread
            data = json.dumps(error.status()).encode()
            self._send_bytes(error.code, data, JSON, body=method != "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # answer, never hang the client; the headers may be out
            logger.exception("emulator proxy error on %s %s", method, self.path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                failure = ApiError(500, "InternalError", f"emulator proxy error: {exc}")
                self._send_bytes(500, json.dumps(failure.status()).encode(), JSON)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _openapi(self, method: str, path: str) -> None:
        """``/openapi/v2`` (JSON or gnostic protobuf, by ``Accept``) and ``/openapi/v3``."""
        if method != "GET":
            raise method_not_allowed(method)
        if not openapi.available():
            raise unknown_path()
        if path == "/openapi/v2":
            media = negotiate_openapi_v2(self.headers.get("Accept"))
            v2 = openapi.v2_document() if media == JSON else openapi.v2_protobuf()
            self._send_bytes(200, v2, media)
            return
        if path == "/openapi/v3":
            self._send_bytes(200, openapi.v3_index(), JSON)
            return
        document = openapi.v3_document(path.removeprefix("/openapi/v3/"))
        if document is None:
            raise unknown_path()
        self._send_bytes(200, document, JSON)

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        document = _discovery(path)
        if document is not None and method == "GET":
            self._send_json(200, document)
            return
        if path == ACCESS_REVIEWS and method == "POST":
            self._send_json(201, _access_review(body))
            return
        target = resolve(path)
        if target.subresource == "proxy":  # a proxy path in another spelling (``//api/...``)
            raise unknown_path()
        if target.subresource == "log":
            self._send_log(method, target, query)
        elif method == "GET":
            self._read(target, query)
        else:
            self._write(method, target, query, body)

    def _send_log(self, method: str, target: Target, query: dict[str, str]) -> None:
        """``pods/{name}/log``: a Pod's log, streamed (followed with ``follow``)."""
        if method != "GET":
            raise method_not_allowed(method)
        api = self.server.api
        self._send_stream(api.log(target, query, self.server.stopping), "text/plain")

    def _read(self, target: Target, query: dict[str, str]) -> None:
        """GET: one object, a list, or a watch; as a Table when the client asks for one."""
        api = self.server.api
        table = tables.wants_table(self.headers.get("Accept"))
        now = api.store.clock.now

        def shown(payload: dict[str, Any]) -> dict[str, Any]:
            if not table:
                return payload
            return tables.to_table(target.resource, payload, now(), query.get("includeObject"))

        if target.name is not None:
            self._send_json(200, shown(api.get(target)))
        elif is_true(query.get("watch")):
            events = api.watch(target, query, self.server.stopping)
            self._send_stream(
                (
                    json.dumps(
                        {**e, "object": shown(e["object"])}
                        if e["type"] in ("ADDED", "MODIFIED", "DELETED")
                        else e
                    )
                    + "\n"
                    for e in events
                ),
                JSON,
            )
        else:
            self._send_json(200, shown(api.list(target, query)))

    def _write(self, method: str, target: Target, query: dict[str, str], body: Any) -> None:
        """POST to a collection (or an object, as upstream), PUT, PATCH and DELETE an object."""
        api = self.server.api
        warnings = self._warnings
        if method == "POST":
            self._send_json(201, api.create(target, body, query, warnings))
        elif target.name is None:
            raise method_not_allowed(method)
        elif method == "PUT":
            self._send_json(200, api.replace(target, body, query, warnings))
        elif method == "PATCH":
            content_type = self.headers.get("Content-Type") or ""
            self._send_json(200, api.patch(target, content_type, body, query, warnings))
        elif method == "DELETE":
            self._send_json(200, api.delete(target, query, body))
        else:
            raise unknown_path()

    def _send_json(self, code: int, payload: Any) -> None:
        """Answer ``payload`` as JSON, or YAML when the client asked for it."""
        if getattr(self, "_media", JSON) == YAML:
            self._send_bytes(code, yaml.safe_dump(payload, sort_keys=False).encode(), YAML)
        else:
            self._send_bytes(code, json.dumps(payload).encode(), JSON)

    def _closing(self) -> None:
        """While the server stops, every answer ends its connection (``Connection: close``
        sets ``close_connection``), as a real API server's graceful shutdown does: a client
        must not keep a connection to a server that is going away."""
        if self.server.stopping.is_set():
            self.send_header("Connection", "close")

    def _send_bytes(self, code: int, data: bytes, content_type: str, *, body: bool = True) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self._closing()
        for warning in getattr(self, "_warnings", []):
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self._closing()
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
