"""Helpers for the tests of Pods run as real processes and of the pod proxy."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from kube_emulator import EmulatorHandle
from kube_emulator import resources as r

from .conftest import NS

RUN = "emulator.karimasu.io/run"
WORKSPACE_PORT = 8888

#: A backend on every declared port (``PORT_<n>``) that answers each request with what it
#: received, as JSON (``/stream`` answers 50 lines chunked). It logs each request line to
#: stderr, which is the container log.
ECHO_SERVER = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data, "chunked"
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length), length

    def _any(self):
        if self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(50):
                piece = (f"line {i} " + "x" * 1000 + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        body, framing = self._body()
        answer = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("latin-1"),
            "framing": framing,
            "port": self.server.server_address[1],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("Connection", "keep-alive, X-Hop")
        self.send_header("X-Hop", "must not pass")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("X-Backend", "echo")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

import threading
ports = [int(v) for k, v in os.environ.items() if k.startswith("PORT_")]
for port in ports:
    server = HTTPServer(("127.0.0.1", port), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("echo backend on", *sorted(ports), flush=True)
threading.Event().wait()
"""


def process_pod(
    name: str,
    *,
    mode: str = "process",
    command: list[str] | None = None,
    args: list[str] | None = None,
    ports: tuple[int, ...] = (WORKSPACE_PORT,),
    env: dict[str, str] | None = None,
    restart_policy: str = "Never",
    grace: int | None = None,
) -> client.V1Pod:
    container = client.V1Container(
        name="main",
        image="quay.io/jupyter/base-notebook:2026-01-01",
        command=command,
        args=args,
        ports=[client.V1ContainerPort(container_port=p) for p in ports],
        env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()],
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations={RUN: mode}),
        spec=client.V1PodSpec(
            containers=[container],
            restart_policy=restart_policy,
            termination_grace_period_seconds=grace,
        ),
    )


def echo_pod(name: str, **kwargs: Any) -> client.V1Pod:
    return process_pod(name, command=[sys.executable, "-c", ECHO_SERVER], **kwargs)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def is_ready(core: client.CoreV1Api, name: str) -> bool:
    pod = core.read_namespaced_pod(name, NS)
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def start_ready(core: client.CoreV1Api, pod: client.V1Pod) -> client.V1Pod:
    core.create_namespaced_pod(NS, pod)
    name = pod.metadata.name
    wait_for(lambda: is_ready(core, name), what=f"pod {name} Ready")
    return core.read_namespaced_pod(name, NS)


def pid_of(emulator: EmulatorHandle, name: str) -> int:
    """The pid of the process the Pod ``name`` runs as now."""
    uid = emulator.store.get(r.PODS, NS, name)["metadata"]["uid"]
    run = emulator.controller.kubelet.processes.get(uid)
    assert run is not None, f"pod {name} runs no process"
    return run.pid


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` as is on a fresh connection and read until the server closes or a full
    answer head and ``Content-Length`` body arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                break
            if not piece:
                break
            received += piece
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length" and len(body) >= int(value):
                        return received
        return received


def status_code(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])
