"""The ``pods/proxy`` subresource: HTTP and WebSocket to Pods run as processes (issue 16)."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest
import websocket
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import NS, make_pod
from .workspace_helpers import (
    alive,
    echo_pod,
    pid_of,
    process_pod,
    raw_request,
    start_ready,
    status_code,
    wait_for,
)

BASE = "/s/42/"
PROXY = f"/api/v1/namespaces/{NS}/pods"


@pytest.fixture
def workspace(live, live_core) -> client.V1Pod:
    pod = process_pod("lab", mode="workspace", env={"KARIMASU_BASE_URL": BASE})
    # A real cluster would run this command; the emulator runs its stand-in instead.
    pod.spec.containers[0].command = ["jupyter", "lab", "--port=8888"]
    return start_ready(live_core, pod)


@pytest.fixture
def echo(live, live_core) -> client.V1Pod:
    return start_ready(live_core, echo_pod("echo", ports=(8080, 9090)))


def _ws_url(live, path: str) -> str:
    return live.url.replace("http://", "ws://", 1) + path


def _request(
    live, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


# -- the stand-in workspace through the official client ---------------------------------------


def test_the_official_client_reaches_the_workspace_under_its_base_path(
    live_core, workspace
) -> None:
    page = live_core.connect_get_namespaced_pod_proxy_with_path(
        "lab", NS, f"{BASE.strip('/')}/", _preload_content=False
    )
    text = page.data.decode()
    assert page.status == 200
    assert "<title>Karimasu workspace on lab</title>" in text
    assert '"/s/42/ws/echo"' in text  # the page's WebSocket honours the base path
    assert "KARIMASU_BASE_URL" in text
    status = live_core.connect_get_namespaced_pod_proxy_with_path(
        "lab:8888", NS, "s/42/api/status", _preload_content=False
    )
    assert status.headers["Content-Type"] == "application/json"
    assert set(json.loads(status.data)) == {"last_activity", "connections"}
    with pytest.raises(ApiException) as outside:  # nothing is served outside the base path
        live_core.connect_get_namespaced_pod_proxy_with_path("lab", NS, "api/status")
    assert outside.value.status == 404


def test_websocket_echo_round_trip_through_the_proxy_and_activity(live, workspace) -> None:
    status_path = f"{PROXY}/lab/proxy{BASE}api/status"
    _, _, before = _request(live, "GET", status_path)
    time.sleep(0.05)
    ws = websocket.create_connection(_ws_url(live, f"{PROXY}/lab/proxy{BASE}ws/echo"), timeout=20)
    try:
        ws.send("hello through the API server")
        assert ws.recv() == "hello through the API server"
        big = bytes(range(256)) * (3 * 4096)  # 3 MiB, many TCP segments and relay reads
        ws.send_binary(big)
        assert ws.recv() == big
        _, _, during = _request(live, "GET", status_path)
        assert json.loads(during)["connections"] == 1
        assert json.loads(during)["last_activity"] > json.loads(before)["last_activity"]
    finally:
        ws.close()
    wait_for(lambda: json.loads(_request(live, "GET", status_path)[2])["connections"] == 0)
    # Polling the status is no activity (the portal's culler polls it).
    first = json.loads(_request(live, "GET", status_path)[2])["last_activity"]
    time.sleep(0.05)
    assert json.loads(_request(live, "GET", status_path)[2])["last_activity"] == first


def test_several_websockets_at_once(live, workspace) -> None:
    sockets = [
        websocket.create_connection(_ws_url(live, f"{PROXY}/lab/proxy{BASE}ws/echo"), timeout=20)
        for _ in range(3)
    ]
    try:
        for i, ws in enumerate(sockets):
            ws.send(f"message {i}")
        assert [ws.recv() for ws in sockets] == [f"message {i}" for i in range(3)]
    finally:
        for ws in sockets:
            ws.close()


def test_a_websocket_ends_when_the_pod_is_deleted(live, live_core, workspace) -> None:
    pid = pid_of(live, "lab")
    ws = websocket.create_connection(_ws_url(live, f"{PROXY}/lab/proxy{BASE}ws/echo"), timeout=20)
    ws.send("ping")
    assert ws.recv() == "ping"
    live_core.delete_namespaced_pod("lab", NS)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(100):
            ws.send("still there?")
            ws.recv()
            time.sleep(0.1)
    ws.close()
    wait_for(lambda: not alive(pid), what="the workspace process gone")
    wait_for(lambda: _request(live, "GET", f"{PROXY}/lab/proxy{BASE}")[0] == 404)
    status, _, body = _request(live, "GET", f"{PROXY}/lab/proxy{BASE}")
    assert (status, json.loads(body)["reason"]) == (404, "NotFound")


# -- HTTP: methods, bodies, headers ------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_is_forwarded_with_path_query_and_body(live, echo, method: str) -> None:
    body = b'{"x": 1}' if method in ("POST", "PUT", "PATCH") else None
    status, headers, data = _request(
        live, method, f"{PROXY}/echo:8080/proxy/some/where/?a=1&b=%2F", body=body
    )
    assert status == 200
    seen = json.loads(data)
    assert seen["method"] == method
    assert seen["path"] == "/some/where/?a=1&b=%2F"
    assert seen["body"] == (body or b"").decode()
    assert headers["x-backend"] == "echo"


def test_head_answers_headers_only(live, echo) -> None:
    status, headers, data = _request(live, "HEAD", f"{PROXY}/echo/proxy/head")
    assert status == 200 and data == b""
    assert int(headers["content-length"]) > 0


def test_the_port_picks_the_backend_and_defaults_to_the_first_declared(live, echo) -> None:
    ports = {}
    for name in ("echo", "echo:8080", "echo:9090", "http:echo:9090"):
        status, _, data = _request(live, "GET", f"{PROXY}/{name}/proxy/")
        assert status == 200, name
        ports[name] = json.loads(data)["port"]
    assert ports["echo"] == ports["echo:8080"] != ports["echo:9090"] == ports["http:echo:9090"]


def test_hop_by_hop_and_authorization_headers_are_not_forwarded(live, echo) -> None:
    status, headers, data = _request(
        live,
        "GET",
        f"{PROXY}/echo/proxy/headers",
        headers={
            "Authorization": "Bearer cluster-token",
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "drop me",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic eDp5",
            "X-Forwarded-User": "alice",
            "Cookie": "session=abc",
        },
    )
    assert status == 200
    sent = {k.lower(): v for k, v in json.loads(data)["headers"]}
    for dropped in ("authorization", "x-secret-hop", "keep-alive", "te", "proxy-authorization"):
        assert dropped not in sent
    assert "x-secret-hop" not in sent.get("connection", "").lower()
    assert sent["x-forwarded-user"] == "alice"
    assert sent["cookie"] == "session=abc"
    assert sent["host"].startswith("127.0.0.1:")
    # The backend's own hop-by-hop headers do not come back either.
    assert "x-hop" not in headers and "keep-alive" not in headers


def test_a_chunked_request_body_is_streamed_to_the_backend(live, echo) -> None:
    pieces = [b"a" * 70000, b"b" * 10, b"c" * 5000]

    def chunks():
        yield from pieces

    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=20)
    try:
        conn.request("PUT", f"{PROXY}/echo/proxy/upload", body=chunks(), encode_chunked=True)
        response = conn.getresponse()
        seen = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert seen["body"] == b"".join(pieces).decode()
    assert seen["framing"] == "chunked"


def test_a_large_body_and_a_chunked_answer_stream_through(live, echo) -> None:
    body = b"z" * (5 * 1024 * 1024)
    status, _, data = _request(live, "POST", f"{PROXY}/echo/proxy/big", body=body)
    assert status == 200 and len(json.loads(data)["body"]) == len(body)
    status, headers, data = _request(live, "GET", f"{PROXY}/echo/proxy/stream")
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"
    assert data.count(b"\n") == 50 and data.startswith(b"line 0 ")


def test_keep_alive_serves_several_proxied_requests_on_one_connection(live, echo) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=20)
    try:
        for i in range(3):
            conn.request("POST", f"{PROXY}/echo/proxy/n{i}", body=b"x" * i)
            response = conn.getresponse()
            assert json.loads(response.read())["path"] == f"/n{i}"
    finally:
        conn.close()


# -- errors --------------------------------------------------------------------------------------


def test_a_missing_pod_is_404(live, live_core) -> None:
    with pytest.raises(ApiException) as caught:
        live_core.connect_get_namespaced_pod_proxy_with_path("ghost", NS, "x")
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'pods "ghost" not found'


def test_a_simulated_pod_is_503(live, live_core) -> None:
    pod = make_pod("simulated")
    pod.spec.containers[0].ports = [client.V1ContainerPort(container_port=80)]
    live_core.create_namespaced_pod(NS, pod)
    wait_for(lambda: live_core.read_namespaced_pod("simulated", NS).status.phase == "Running")
    status, _, body = _request(live, "GET", f"{PROXY}/simulated/proxy/")
    assert status == 503
    assert json.loads(body)["reason"] == "ServiceUnavailable"


def test_a_finished_process_pod_is_503(live, live_core) -> None:
    pod = process_pod("done", command=["python3", "-c", "pass"])
    live_core.create_namespaced_pod(NS, pod)
    wait_for(lambda: live_core.read_namespaced_pod("done", NS).status.phase == "Succeeded")
    status, _, body = _request(live, "GET", f"{PROXY}/done/proxy/")
    assert status == 503 and "not running" in json.loads(body)["message"]


def test_an_undeclared_port_is_400_and_reaches_nothing(live, live_core, echo, workspace) -> None:
    # The workspace's local port is a live port on this host, but not one of echo's.
    workspace_local = live.controller.kubelet.processes.get(workspace.metadata.uid).ports[8888]
    for port in (8888, workspace_local, 22, 65535):
        status, _, body = _request(live, "GET", f"{PROXY}/echo:{port}/proxy{BASE}api/status")
        assert status == 400, port
        assert "is not a containerPort" in json.loads(body)["message"]


@pytest.mark.parametrize(
    "target",
    [
        "echo:8080:1/proxy/",
        "https:echo:8080/proxy/",
        "echo:http/proxy/",
        "echo:0/proxy/",
        "echo:99999/proxy/",
        "echo:8080%2F..%2F..%2F9090/proxy/",
        "echo:%D9%A8%D9%A0/proxy/",  # Arabic-Indic digits are digits to str.isdigit
    ],
)
def test_malformed_names_and_ports_are_400(live, echo, target: str) -> None:
    status, _, body = _request(live, "GET", f"{PROXY}/{target}")
    assert status == 400, target
    assert json.loads(body)["kind"] == "Status"


@pytest.mark.parametrize(
    "path",
    [
        "/../../../../api/v1/namespaces",
        "/a/./b",
        "/%2e%2e/%2E%2E/x",
        "/..%2f..%2fx",
        "/a%0d%0aX-Injected:%201",
        "/a%00b",
        "/..%5c..%5cx",
    ],
)
def test_traversal_and_control_bytes_in_the_path_are_400(live, echo, path: str) -> None:
    answer = raw_request(
        live.port, f"GET {PROXY}/echo/proxy{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status_code(answer) == 400, path
    log = live.controller.kubelet.processes.get(echo.metadata.uid).log()
    assert not any("namespaces" in line or "Injected" in line for _, line in log)


def test_request_smuggling_is_refused(live, echo) -> None:
    smuggled = (
        f"POST {PROXY}/echo/proxy/front HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    ).encode()
    assert status_code(raw_request(live.port, smuggled)) == 400
    double = (
        f"POST {PROXY}/echo/proxy/front HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        "Content-Length: 40\r\n\r\nx"
    ).encode()
    assert status_code(raw_request(live.port, double)) == 400
    gzip = (
        f"POST {PROXY}/echo/proxy/front HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    ).encode()
    assert status_code(raw_request(live.port, gzip)) == 400
    absolute = (f"GET http://127.0.0.1:1{PROXY}/echo/proxy/ HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    assert status_code(raw_request(live.port, absolute)) == 400
    time.sleep(0.2)
    log = live.controller.kubelet.processes.get(echo.metadata.uid).log()
    assert not any("/smuggled" in line or "/front" in line for _, line in log)


def test_a_websocket_to_a_simulated_pod_is_503(live, live_core) -> None:
    pod = make_pod("sim-ws")
    pod.spec.containers[0].ports = [client.V1ContainerPort(container_port=80)]
    live_core.create_namespaced_pod(NS, pod)
    wait_for(lambda: live_core.read_namespaced_pod("sim-ws", NS).status.phase == "Running")
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        websocket.create_connection(_ws_url(live, f"{PROXY}/sim-ws/proxy/ws"), timeout=10)
    assert caught.value.status_code == 503


def test_stopping_the_server_ends_open_relays(live, workspace) -> None:
    ws = websocket.create_connection(_ws_url(live, f"{PROXY}/lab/proxy{BASE}ws/echo"), timeout=20)
    ws.send("x")
    assert ws.recv() == "x"
    relays = [t for t in threading.enumerate() if t.name.startswith("pod-proxy-relay")]
    assert relays
    live.stop()
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        ws.send("y")
        ws.recv()
    ws.close()
    for thread in relays:
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_discovery_lists_pods_proxy(live) -> None:
    status, _, body = _request(live, "GET", "/api/v1")
    assert status == 200
    resources = {r["name"]: r for r in json.loads(body)["resources"]}
    assert resources["pods/proxy"]["kind"] == "PodProxyOptions"
    assert set(resources["pods/proxy"]["verbs"]) == {"create", "delete", "get", "patch", "update"}


def test_a_proxy_path_without_a_namespace_is_404(live, echo) -> None:
    answer = raw_request(live.port, b"GET /api/v1/pods/echo/proxy/x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_code(answer) == 404
    assert b'"kind": "Pod"' not in answer


def test_a_head_or_options_elsewhere_is_405(live) -> None:
    for method in ("HEAD", "OPTIONS"):
        status, _, _ = _request(live, method, f"/api/v1/namespaces/{NS}/pods")
        assert status == 405


def _handshake(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()


def test_a_client_half_close_reaches_the_workspace_and_the_relay_ends(live, workspace) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=20) as sock:
        sock.sendall(_handshake(f"{PROXY}/lab/proxy{BASE}ws/echo"))
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # the backend's own accept key
        sock.shutdown(socket.SHUT_WR)  # no close frame: the backend sees EOF
        rest = b""
        while piece := sock.recv(4096):
            rest += piece
    # The workspace saw the half-close (its connection count went back) and the relay ended.
    status_path = f"{PROXY}/lab/proxy{BASE}api/status"
    wait_for(lambda: json.loads(_request(live, "GET", status_path)[2])["connections"] == 0)
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("pod-proxy")])


def test_an_upgrade_the_backend_refuses_is_answered_and_closed(live, workspace) -> None:
    answer = raw_request(live.port, _handshake(f"{PROXY}/lab/proxy{BASE}nothing-here"))
    assert status_code(answer) == 404


def test_kubectl_get_raw_reaches_the_workspace(live, workspace) -> None:
    # kubectl is required as for the conformance probes (`make test` installs it).
    assert live.kubeconfig_path is not None
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is not installed"
    path = f"{PROXY}/lab:8888/proxy{BASE}api/status"
    done = subprocess.run(
        [kubectl, "--kubeconfig", str(live.kubeconfig_path), "get", "--raw", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"last_activity", "connections"}
