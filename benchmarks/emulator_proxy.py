"""The emulator's pod proxy: what it adds to a workspace's HTTP and WebSocket traffic.

    .venv/bin/python benchmarks/emulator_proxy.py [--requests 300] [--messages 500]

Starts the emulator in real time with one stand-in workspace pod (``emulator.karimasu.io/run:
workspace``), then measures, each against the same workspace reached directly on its local
port (the baseline, same run):

- HTTP: ``GET {base}api/status``, one new connection per request (the workspace's server
  closes after each answer), median latency;
- WebSocket: round trips of a 1 KiB text message on one connection, median latency;
- WebSocket throughput: 8 echoes of a 16 MiB binary message, MB/s.

Part of ``make bench`` (``python -m benchmarks emulator_proxy``).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import websocket
from kubernetes import client, config

from kube_emulator import start_emulator

NS = "karimasu-jobs"
BASE = "/s/1/"
RUN = {"emulator.karimasu.io/run": "workspace"}


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def _http(port: int, path: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200, response.status
        times.append(time.perf_counter() - start)
    return times


def _round_trips(url: str, count: int) -> list[float]:
    ws = websocket.create_connection(url, timeout=10)
    message = "x" * 1024
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            ws.send(message)
            assert ws.recv() == message
            times.append(time.perf_counter() - start)
    finally:
        ws.close()
    return times


def _throughput(url: str, repeats: int = 8) -> float:
    ws = websocket.create_connection(url, timeout=30)
    payload = b"\x5a" * (16 * 1024 * 1024 - 64)
    try:
        start = time.perf_counter()
        for _ in range(repeats):
            ws.send_binary(payload)
            assert len(ws.recv()) == len(payload)
        elapsed = time.perf_counter() - start
    finally:
        ws.close()
    return 2 * repeats * len(payload) / elapsed / 1e6


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("the workspace pod did not become Ready")
        time.sleep(0.05)


def measure(requests: int, messages: int) -> str:
    kubeconfig = Path(tempfile.mkdtemp(prefix="karimasu-bench-proxy-")) / "kubeconfig"
    handle = start_emulator(kubeconfig_path=kubeconfig, tick_interval=0.2)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        core = client.CoreV1Api(api)
        container = {
            "name": "lab",
            "image": "jupyter",
            "ports": [{"containerPort": 8888}],
            "env": [{"name": "KARIMASU_BASE_URL", "value": BASE}],
        }
        pod = {
            "metadata": {"name": "bench", "annotations": RUN},
            "spec": {"containers": [container]},
        }
        core.create_namespaced_pod(NS, pod)

        def ready() -> bool:
            conditions = core.read_namespaced_pod("bench", NS).status.conditions or []
            return any(c.type == "Ready" and c.status == "True" for c in conditions)

        _wait(ready)
        uid = core.read_namespaced_pod("bench", NS).metadata.uid
        local = handle.controller.kubelet.processes.local_port(uid, 8888)
        assert local is not None
        proxy = f"/api/v1/namespaces/{NS}/pods/bench:8888/proxy{BASE}"
        direct_http = _median_us(_http(local, f"{BASE}api/status", requests))
        proxied_http = _median_us(_http(handle.port, f"{proxy}api/status", requests))
        direct_ws_url = f"ws://127.0.0.1:{local}{BASE}ws/echo"
        proxied_ws_url = f"ws://127.0.0.1:{handle.port}{proxy}ws/echo"
        direct_rt = _median_us(_round_trips(direct_ws_url, messages))
        proxied_rt = _median_us(_round_trips(proxied_ws_url, messages))
        direct_mbs = _throughput(direct_ws_url)
        proxied_mbs = _throughput(proxied_ws_url)
    finally:
        api.close()
        handle.close()
    return (
        f"emulator_proxy: HTTP GET median {proxied_http:.0f} us via the proxy vs "
        f"{direct_http:.0f} us direct ({proxied_http / direct_http:.2f}x, {requests} requests); "
        f"WebSocket 1 KiB round trip median {proxied_rt:.0f} us vs {direct_rt:.0f} us "
        f"({proxied_rt / direct_rt:.2f}x, {messages} messages); 16 MiB echoes "
        f"{proxied_mbs:.0f} MB/s vs {direct_mbs:.0f} MB/s ({proxied_mbs / direct_mbs:.2f}x)"
    )


def run() -> None:
    """``python -m benchmarks emulator_proxy``."""
    print(measure(300, 500), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    print(measure(args.requests, args.messages), flush=True)


if __name__ == "__main__":
    main()
