"""The node agent: `python -m nodeagent.agent` (the DaemonSet's command).

Every `--interval` seconds: read the source (NVML or simulated), map GPU processes to pods
and jobs, keep the reading in a bounded buffer, post the buffer to the portal in batches,
serve the last reading on `/metrics`. No Django here: stdlib HTTP only, so the image stays
small and the process tiny. The loop never dies: a failing source gives an unhealthy
reading, an unreachable portal leaves readings in the buffer for the next round.

Batch (POST /api/v1/telemetry/, `Authorization: Bearer <node token>`):
    {"node": "gpu-01", "source": "nvml", "interval_s": 10, "dropped": 0,
     "readings": [NodeReading.to_dict(), ...]}
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from nodeagent.buffer import ReadingBuffer
from nodeagent.cgroups import KubePodDirectory, ProcessMapper
from nodeagent.prometheus import AgentCounters, MetricsServer, render
from nodeagent.readings import NodeReading, utcnow

log = logging.getLogger("karimasu.telemetry.agent")

INGEST_PATH = "/api/v1/telemetry/"
BATCH_MAX_READINGS = 30  # ~30 x 8 GPUs stays well under the 1 MiB request limit


class Source(Protocol):
    name: str

    def read(self, now: datetime) -> NodeReading: ...


class SendError(Exception):
    """The portal did not take the batch now; keep it and try again later."""


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class HttpSender:
    """POSTs a batch with the node token. 2xx: taken. 400/413/422: the portal will never take
    it (logged, discarded). Anything else, or no answer: SendError (retry later).

    The token is a credential: plain http is refused except to this machine (the demo) or
    with `allow_http`. `ca_file` verifies the portal's certificate against a private CA.
    """

    def __init__(
        self,
        portal: str,
        token: str,
        timeout: float = 10.0,
        *,
        ca_file: str | None = None,
        allow_http: bool = False,
    ) -> None:
        if not portal.startswith(("http://", "https://")):
            raise ValueError(f"--portal must be an http(s) URL, not {portal!r}")
        host = urllib.parse.urlsplit(portal).hostname or ""
        if portal.startswith("http://") and host not in LOOPBACK_HOSTS and not allow_http:
            raise ValueError(
                f"--portal {portal!r} is plain http: the node token would travel in clear; "
                "use https:// (with --ca-file for a private CA) or pass --allow-http"
            )
        self.url = portal.rstrip("/") + INGEST_PATH
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def __call__(self, batch: dict[str, Any]) -> bool:
        request = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            self.url,
            data=json.dumps(batch, separators=(",", ":")).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.token}",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout, context=self.context
            ) as response:
                response.read()
                return True
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace")
            if exc.code in (400, 413, 422):
                log.error("portal rejected a batch (%s): %s", exc.code, detail)
                return False
            raise SendError(f"HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise SendError(str(exc)) from exc


class Agent:
    def __init__(
        self,
        source: Source,
        node: str,
        send: Callable[[dict[str, Any]], bool] | None,
        *,
        mapper: ProcessMapper | None = None,
        buffer_size: int = 360,
        interval: float = 10.0,
        send_interval: float = 0.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.source, self.node, self.send = source, node, send
        self.mapper = mapper
        self.buffer = ReadingBuffer(buffer_size)
        self.interval = interval
        self.send_interval = send_interval
        self.clock = clock
        self._last_flush: datetime | None = None
        self.last: NodeReading | None = None
        self.send_failures = 0
        self._lock = threading.Lock()

    def read(self) -> NodeReading:
        now = self.clock()
        try:
            reading = self.source.read(now)
            if self.mapper is not None:
                reading = self.mapper.annotate(reading)
        except Exception as exc:
            log.exception("source %s failed", self.source.name)
            reading = NodeReading(at=now, healthy=False, error=f"agent: {exc}")
        return reading

    def tick(self) -> NodeReading:
        """One round: read, buffer, and deliver the backlog when a send is due (every
        `send_interval` seconds of readings, at once when 0 or the buffer holds a full batch)."""
        reading = self.read()
        with self._lock:
            self.last = reading
            self.buffer.push(reading.to_dict())
        due = (
            self._last_flush is None
            or (reading.at - self._last_flush).total_seconds() >= self.send_interval - 1e-6
            or len(self.buffer) >= BATCH_MAX_READINGS
        )
        if due:
            self._last_flush = reading.at
            self.flush()
        return reading

    def flush(self) -> bool:
        """Send the buffer oldest first; False when the portal did not answer."""
        if self.send is None:
            return True
        while len(self.buffer):
            readings = self.buffer.peek(BATCH_MAX_READINGS)
            dropped = self.buffer.dropped
            batch = {
                "node": self.node,
                "source": self.source.name,
                "interval_s": self.interval,
                "dropped": dropped,
                "readings": readings,
            }
            try:
                self.send(batch)
            except SendError as exc:
                self.send_failures += 1
                log.warning("portal unreachable, %d readings buffered: %s", len(self.buffer), exc)
                return False
            with self._lock:
                self.buffer.acknowledge(len(readings), dropped)
        return True

    def counters(self) -> AgentCounters:
        return AgentCounters(len(self.buffer), self.buffer.dropped_total, self.send_failures)

    def metrics(self) -> str:
        return render(self.node, self.last, self.counters())

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = self.clock()
            try:
                self.tick()
            except Exception:
                log.exception("agent round failed")
            elapsed = (self.clock() - started).total_seconds()
            stop.wait(max(0.0, self.interval - elapsed))


def build_source(args: argparse.Namespace) -> Source:
    if args.source == "simulated":
        from nodeagent.simulated import SimulatedSource

        return SimulatedSource(args.node, kubeconfig=args.kubeconfig)
    from nodeagent.nvml import NvmlSource

    return NvmlSource()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nodeagent.agent", description="Karimasu GPU node agent"
    )
    env = os.environ.get
    parser.add_argument("--portal", default=env("KARIMASU_PORTAL_URL"), help="portal base URL")
    parser.add_argument("--token", default=env("KARIMASU_NODE_TOKEN"), help="node token")
    parser.add_argument("--token-file", default=env("KARIMASU_NODE_TOKEN_FILE"))
    parser.add_argument(
        "--ca-file",
        default=env("KARIMASU_PORTAL_CA_FILE"),
        help="PEM bundle to verify the portal's certificate (default: the system's)",
    )
    parser.add_argument(
        "--allow-http",
        action="store_true",
        default=env("KARIMASU_AGENT_ALLOW_HTTP", "").lower() in ("1", "true", "yes"),
        help="allow a plain http portal URL other than loopback (the token travels in clear)",
    )
    parser.add_argument("--node", default=env("NODE_NAME") or socket.gethostname())
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between readings")
    parser.add_argument(
        "--send-interval",
        type=float,
        default=30.0,
        help="seconds between posts (readings in between go in one batch); 0: every reading",
    )
    parser.add_argument("--source", choices=["nvml", "simulated"], default="nvml")
    parser.add_argument("--kubeconfig", default=env("KUBECONFIG"), help="simulated source / pods")
    parser.add_argument(
        "--pods",
        choices=["none", "kube"],
        default=env("KARIMASU_AGENT_PODS", "none"),
        help="resolve pod UIDs to jobs through the Kubernetes API (kube) or let the portal",
    )
    parser.add_argument("--proc-root", default=env("KARIMASU_PROC_ROOT", "/proc"))
    parser.add_argument("--buffer-size", type=int, default=360, help="readings kept when down")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics here")
    parser.add_argument("--once", action="store_true", help="one reading, then exit")
    parser.add_argument("--print", action="store_true", help="print the reading as JSON")
    parser.add_argument("--log-level", default=env("KARIMASU_AGENT_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as handle:
            args.token = handle.read().strip()
    if not args.once and not (args.portal and args.token):
        parser.error("--portal and --token (or --token-file) are needed unless --once")
    if args.buffer_size < 1:
        parser.error("--buffer-size must be at least 1")
    if args.portal:
        try:
            HttpSender(
                args.portal, args.token or "", ca_file=args.ca_file, allow_http=args.allow_http
            )
        except (ValueError, OSError) as exc:  # a bad URL, or a CA file that cannot be read
            parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    directory = KubePodDirectory(args.node, args.kubeconfig) if args.pods == "kube" else None
    send = (
        HttpSender(args.portal, args.token, ca_file=args.ca_file, allow_http=args.allow_http)
        if args.portal and args.token
        else None
    )
    agent = Agent(
        build_source(args),
        args.node,
        send,
        mapper=ProcessMapper(args.proc_root, directory),
        buffer_size=args.buffer_size,
        interval=args.interval,
        send_interval=args.send_interval,
    )
    if args.once:
        reading = agent.tick() if send else agent.read()
        if args.print:
            json.dump(reading.to_dict(), sys.stdout, indent=2)
            sys.stdout.write("\n")
        return 0 if reading.healthy else 1
    if args.metrics_port is not None:
        MetricsServer(agent.metrics, port=args.metrics_port)
    log.info("agent node=%s source=%s interval=%ss", args.node, args.source, args.interval)
    agent.run(threading.Event())
    return 0


if __name__ == "__main__":
    sys.exit(main())
