"""A stand-in for the Kubernetes API server's pod list and pod proxy, as the session proxy
uses them, served by uvicorn in a thread: it records what reached it (headers, paths) so
tests can assert what the portal forwarded and what it kept back."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn

NAMESPACE = "karimasu-jobs"
POD = "karimasu-job-1-a1-abcde"
PORT = 8888


@dataclass
class Upstream:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    pod_running: bool = True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        record = {
            "type": scope["type"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "headers": headers,
        }
        self.requests.append(record)
        pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
        proxy = f"{pods}/{POD}:{PORT}/proxy/"
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, proxy)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        record["body"] = body.decode(errors="replace")
        if scope["path"] == pods:
            selector = parse_qs(record["query"]).get("labelSelector", [""])[0]
            phase = "Running" if self.pod_running else "Pending"
            items = [{"metadata": {"name": POD, "labels": {}}, "status": {"phase": phase}}]
            await _json(send, 200, {"kind": "PodList", "items": items, "selector": selector})
        elif scope["path"].startswith(proxy):
            rest = scope["path"][len(proxy) :]
            extra: list[tuple[bytes, bytes]] = []
            if rest.endswith("/cookies"):
                base = "/" + rest[: -len("cookies")]
                extra = [
                    (b"set-cookie", b"sessionid=stolen; Path=/"),
                    (b"set-cookie", f"_xsrf=ok; Path={base}".encode()),
                    (b"set-cookie", b"other=x; Path=/s/999999/"),
                ]
            if rest.endswith("/page"):
                page = b"<!doctype html><title>workspace</title><h1>Stand-in workspace</h1>"
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"text/html")],
                    }
                )
                await send({"type": "http.response.body", "body": page})
                return
            await _json(send, 200, {"rest": rest, **record}, extra)
        else:
            await _json(send, 404, {"kind": "Status", "code": 404})

    async def _websocket(self, scope: Any, receive: Any, send: Any, proxy: str) -> None:
        await receive()  # websocket.connect
        if not scope["path"].startswith(proxy):
            await send({"type": "websocket.close", "code": 1008})
            return
        protocols = scope.get("subprotocols") or []
        await send({"type": "websocket.accept", "subprotocol": protocols[0] if protocols else None})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "close-me":
                await send({"type": "websocket.close", "code": 4321})
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": "echo:" + message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": b"echo:" + message["bytes"]})


async def _json(
    send: Any, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(extra or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def write_kubeconfig(path: Any, url: str, token: str) -> str:
    """A kubeconfig for ``url`` with a bearer token (the cluster's credential)."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": NAMESPACE}}
                ],
                "current-context": "x",
            }
        ),
        encoding="utf-8",
    )
    return str(path)


@contextmanager
def serve_portal() -> Iterator[str]:
    """``portal.asgi`` under uvicorn against the test database. Django's ASGI handler runs
    each request's ORM work in a thread of its own: with ``CONN_MAX_AGE`` 0 the request's
    end closes its connection (as in production with persistent connections off), so none
    outlives the test and blocks dropping the test database."""
    from asgiref.sync import SyncToAsync
    from django.db import connections

    from portal.asgi import application

    conf = connections.settings["default"]
    before = conf.get("CONN_MAX_AGE", 0)
    conf["CONN_MAX_AGE"] = 0
    try:
        with serve(application) as url:
            yield url
    finally:
        conf["CONN_MAX_AGE"] = before
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@contextmanager
def one_node_cluster(settings: Any) -> Iterator[Any]:
    """The Kubernetes emulator in real time (pods run as real processes) with one node of
    two V100s (``ONE_NODE``), its kubeconfig set as ``settings.KUBECONFIG``: the session
    end-to-end tests' cluster."""
    from kube_emulator import start_emulator
    from tests.scheduler.cluster.conftest import ONE_NODE

    with tempfile.TemporaryDirectory(prefix="karimasu-session-") as scratch:
        nodes = Path(scratch) / "nodes.yaml"
        nodes.write_text(ONE_NODE)
        handle = start_emulator(
            nodes_file=str(nodes),
            kubeconfig_path=str(Path(scratch) / "kubeconfig"),
            tick_interval=0.05,
        )
        settings.KUBECONFIG = str(handle.kubeconfig_path)
        try:
            yield handle
        finally:
            handle.close()
