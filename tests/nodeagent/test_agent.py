"""The agent against a real local HTTP server that is down, then up; /metrics; --once."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nodeagent import agent as agent_module
from nodeagent.agent import Agent, HttpSender
from nodeagent.readings import GpuReading, NodeReading, ProcessReading


class CountingSource:
    """Readings 0, 1, 2, ... (utilization = sequence number), one GPU."""

    name = "test"

    def __init__(self) -> None:
        self.n = 0

    def read(self, now: datetime) -> NodeReading:
        self.n += 1
        gpu = GpuReading(index=0, uuid="GPU-x", utilization_gpu_pct=float(self.n))
        gpu.processes = [ProcessReading(pid=7, job_id=5, foreign=False)]
        return NodeReading(at=now, gpus=[gpu])


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=10)
        return self.now


class Portal:
    """A stdlib HTTP server on a fixed port that can be started and stopped."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.batches: list[dict] = []
        self.auth: list[str] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                portal.batches.append(json.loads(body))
                portal.auth.append(self.headers["Authorization"])
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def portal():
    portal = Portal()
    yield portal
    portal.stop()


def utilizations(batches: list[dict]) -> list[float]:
    return [r["gpus"][0]["utilization_gpu_pct"] for b in batches for r in b["readings"]]


def test_backlog_is_delivered_when_the_portal_returns(portal):
    sender = HttpSender(f"http://127.0.0.1:{portal.port}", "kmn_secret", timeout=2)
    agent = Agent(CountingSource(), "gpu-01", sender, buffer_size=10, clock=Clock())
    for _ in range(3):
        agent.tick()  # nothing listens: connection refused, the loop goes on
    assert len(agent.buffer) == 3 and agent.send_failures == 3 and portal.batches == []
    portal.start()
    agent.tick()
    assert utilizations(portal.batches) == [1.0, 2.0, 3.0, 4.0]
    assert portal.batches[0]["dropped"] == 0 and portal.auth[0] == "Bearer kmn_secret"
    assert portal.batches[0]["node"] == "gpu-01" and len(agent.buffer) == 0


def test_oldest_dropped_when_full_and_the_drop_count_reported_once(portal):
    sender = HttpSender(f"http://127.0.0.1:{portal.port}", "kmn_secret", timeout=2)
    agent = Agent(CountingSource(), "gpu-01", sender, buffer_size=3, clock=Clock())
    for _ in range(5):
        agent.tick()
    assert len(agent.buffer) == 3 and agent.buffer.dropped == 2
    portal.start()
    agent.tick()
    # 1, 2 and 3 were pushed out by 4, 5 and 6; 6 arrived while 4, 5 waited.
    assert utilizations(portal.batches) == [4.0, 5.0, 6.0]
    assert [b["dropped"] for b in portal.batches] == [3]
    agent.tick()
    assert portal.batches[-1]["dropped"] == 0
    assert 'karimasu_agent_dropped_readings_total{node="gpu-01"} 3' in agent.metrics()


def test_a_portal_going_down_again_keeps_the_rest(portal):
    portal.start()
    sender = HttpSender(f"http://127.0.0.1:{portal.port}", "kmn_secret", timeout=2)
    agent = Agent(CountingSource(), "gpu-01", sender, buffer_size=10, clock=Clock())
    agent.tick()
    portal.stop()
    agent.tick()
    agent.tick()
    portal.start()
    agent.tick()
    assert utilizations(portal.batches) == [1.0, 2.0, 3.0, 4.0]


def test_a_failing_source_never_stops_the_loop():
    class Exploding:
        name = "boom"

        def read(self, now):
            raise RuntimeError("segfault-ish")

    agent = Agent(Exploding(), "gpu-01", None, clock=Clock())
    reading = agent.tick()
    assert reading.healthy is False and "segfault-ish" in reading.error
    stop = threading.Event()
    agent.interval = 0.01
    calls = []
    agent.tick = lambda: (calls.append(1), stop.set() if len(calls) >= 3 else None)  # type: ignore[method-assign]
    agent.run(stop)
    assert len(calls) == 3


def test_metrics_endpoint_serves_prometheus_text():
    from nodeagent.prometheus import MetricsServer

    agent = Agent(CountingSource(), "gpu-01", None, clock=Clock())
    agent.tick()
    server = MetricsServer(agent.metrics, host="127.0.0.1", port=0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = response.read().decode()
    finally:
        server.close()
    samples = parse_prometheus(text)
    labels = (("gpu", "0"), ("job", "5"), ("node", "gpu-01"), ("uuid", "GPU-x"))
    assert samples[("karimasu_gpu_utilization_ratio", labels)] == pytest.approx(0.01)
    assert samples[("karimasu_gpu_foreign_processes", labels)] == 0
    assert samples[("karimasu_node_nvml_healthy", (("node", "gpu-01"),))] == 1
    # Null fields are left out, not reported as zero.
    assert not any(name == "karimasu_gpu_temperature_celsius" for name, _ in samples)


def parse_prometheus(text: str) -> dict[tuple[str, tuple], float]:
    """A strict little parser of the text format: HELP/TYPE before samples, labels quoted."""
    out: dict[tuple[str, tuple], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        head, value = line.rsplit(" ", 1)
        name, _, rest = head.partition("{")
        assert name in typed, f"{name} has no TYPE line"
        pairs = []
        for part in rest.rstrip("}").split(","):
            key, _, quoted = part.partition("=")
            assert quoted.startswith('"') and quoted.endswith('"'), line
            pairs.append((key, quoted[1:-1]))
        out[(name, tuple(sorted(pairs)))] = float(value)
    return out


def test_once_print_without_a_gpu_prints_an_unhealthy_reading(capsys):
    rc = agent_module.main(["--once", "--print", "--node", "gpu-01"])
    printed = json.loads(capsys.readouterr().out)
    assert rc == 1 and printed["healthy"] is False and printed["gpus"] == []
    assert printed["at"].endswith("Z")


def test_the_agent_needs_no_django():
    import subprocess
    import sys

    code = (
        "import sys, nodeagent.agent, nodeagent.nvml, "
        "nodeagent.simulated; print('django' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_send_interval_groups_readings_into_one_batch(portal):
    portal.start()
    sender = HttpSender(f"http://127.0.0.1:{portal.port}", "kmn_secret", timeout=2)
    agent = Agent(CountingSource(), "gpu-01", sender, send_interval=30, clock=Clock())
    for _ in range(7):
        agent.tick()
    # The first reading goes at once (start-up), then every 30 s of readings (10 s apart).
    assert [len(b["readings"]) for b in portal.batches] == [1, 3, 3]
    assert utilizations(portal.batches) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_a_batch_the_portal_calls_malformed_is_dropped_not_retried_forever():
    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"error": {"code": "invalid", "message": "no", "details": {}}}'
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sender = HttpSender(f"http://127.0.0.1:{server.server_address[1]}", "kmn_x", timeout=2)
        agent = Agent(CountingSource(), "gpu-01", sender, clock=Clock())
        agent.tick()
        assert len(agent.buffer) == 0 and agent.send_failures == 0
    finally:
        server.shutdown()
        server.server_close()


def test_portal_url_must_be_http():
    with pytest.raises(ValueError, match="http"):
        HttpSender("file:///etc/passwd", "kmn_x")


def test_plain_http_is_refused_off_this_machine():
    """The node token is a credential: it must not cross the network in clear."""
    with pytest.raises(ValueError, match="plain http"):
        HttpSender("http://karimasu-web.karimasu.svc", "kmn_secret")
    HttpSender("http://karimasu-web.karimasu.svc", "kmn_secret", allow_http=True)
    HttpSender("https://karimasu.example.com", "kmn_secret")
    HttpSender("http://localhost:8000", "kmn_secret")


def test_parse_args_reports_a_plain_http_portal_and_a_missing_ca_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        agent_module.parse_args(["--portal", "http://portal.example", "--token", "t"])
    assert "plain http" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        agent_module.parse_args(
            ["--portal", "https://p.example", "--token", "t", "--ca-file", str(tmp_path / "no")]
        )
    assert "No such file" in capsys.readouterr().err


def test_https_with_a_private_ca_verifies_the_portal(tmp_path):
    """A real TLS server with a self-signed certificate: refused without the CA file,
    delivered with it."""
    import shutil
    import ssl
    import subprocess

    openssl = shutil.which("openssl")
    assert openssl, "the openssl command (Debian's openssl package) makes the test certificate"
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost", "-keyout", str(key_file), "-out", str(cert_file)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://localhost:{server.server_address[1]}"
        with pytest.raises(agent_module.SendError, match="CERTIFICATE_VERIFY_FAILED"):
            HttpSender(url, "kmn_x", timeout=5)({"node": "n1"})
        assert HttpSender(url, "kmn_x", timeout=5, ca_file=str(cert_file))({"node": "n1"})
        assert received == [{"node": "n1"}]
    finally:
        server.shutdown()
