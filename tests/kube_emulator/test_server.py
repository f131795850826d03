"""The server's life: kubeconfig, stop and restart with state kept, real-time mode, the CLI."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import urllib3
from kubernetes import client, config, watch

from kube_emulator import start_emulator

from .conftest import NS, job_pods, make_job, make_pod


def test_kubeconfig_is_plain_http_and_loads_in_the_client(emulator) -> None:
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(emulator.kubeconfig_path), client_configuration=configuration
    )
    assert configuration.host == emulator.url
    assert emulator.url.startswith("http://127.0.0.1:")
    core = client.CoreV1Api(client.ApiClient(configuration))
    assert len(core.list_node().items) == 4


def test_stop_then_restart_keeps_state_and_port(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("durable", duration=20))
    emulator.settle()
    version = int(core.list_namespaced_pod(NS).metadata.resource_version)
    port = emulator.port

    emulator.stop()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_node(_request_timeout=1)
    emulator.advance(20)  # the cluster keeps running while the API server is down
    emulator.restart()

    assert emulator.port == port
    [pod] = job_pods(core, "durable")
    assert pod.status.phase == "Succeeded"
    assert int(core.list_namespaced_pod(NS).metadata.resource_version) > version
    assert batch.read_namespaced_job("durable", NS).status.succeeded == 1


def test_stop_cuts_open_watches(emulator, core) -> None:
    start = core.list_namespaced_pod(NS).metadata.resource_version
    ended = threading.Event()

    def consume() -> None:
        try:
            for _ in watch.Watch().stream(
                core.list_namespaced_pod, NS, resource_version=start, timeout_seconds=30
            ):
                pass
        except urllib3.exceptions.HTTPError:
            pass  # a cut connection may surface as a protocol error: also an end
        ended.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.1)
    emulator.stop()
    assert ended.wait(5), "the watch must end when the server stops"
    emulator.restart()
    core.create_namespaced_pod(NS, make_pod("after-restart"))
    assert core.read_namespaced_pod("after-restart", NS).metadata.name == "after-restart"


def test_a_stopping_server_closes_the_connection_it_answers_on(emulator) -> None:
    """A connection the stopping server accepted (between cutting the open ones and
    closing its socket) is answered 503 and then closed, like a real API server's
    graceful shutdown: left open, a client's pool kept it, and every later request on it
    got the old server's 503, even after the restart."""
    with socket.create_connection((emulator.host, emulator.port), timeout=5) as sock:
        emulator._server.stopping.set()  # the first step of stop(): what that window sees
        sock.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: k8s\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes: a timeout fails
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 503") and "connection: close" in head


def test_real_time_mode_runs_jobs_with_the_ticker(tmp_path: Path) -> None:
    with start_emulator(kubeconfig_path=tmp_path / "kc", tick_interval=0.02) as handle:
        api = config.new_client_from_config(config_file=str(handle.kubeconfig_path))
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        batch.create_namespaced_job(NS, make_job("quick", duration=0.2))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if batch.read_namespaced_job("quick", NS).status.succeeded:
                break
            time.sleep(0.05)
        assert batch.read_namespaced_job("quick", NS).status.succeeded == 1
        assert job_pods(core, "quick")[0].status.phase == "Succeeded"
        api.close()


def test_command_line_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kube_emulator",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],  # the repository root: its kube_emulator
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        assert configuration.host == url
        nodes = client.CoreV1Api(client.ApiClient(configuration)).list_node().items
        assert len(nodes) == 4
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()
