"""`/metrics` in Prometheus text format (0.0.4) with DCGM-like names, from the last reading.

Per GPU, labels `node`, `gpu` (index), `uuid`, `job` (job ids on it, comma-separated, "" for
none): `karimasu_gpu_utilization_ratio`, `karimasu_gpu_memory_utilization_ratio`,
`karimasu_gpu_memory_used_bytes`, `karimasu_gpu_memory_total_bytes`,
`karimasu_gpu_temperature_celsius`, `karimasu_gpu_power_usage_watts`,
`karimasu_gpu_power_limit_watts`, `karimasu_gpu_ecc_uncorrected_errors`,
`karimasu_gpu_healthy`, `karimasu_gpu_foreign_processes`, `karimasu_gpu_processes`; plus the
agent's own `karimasu_node_nvml_healthy`, `karimasu_agent_buffered_readings`,
`karimasu_agent_dropped_readings_total`, `karimasu_agent_send_failures_total`,
`karimasu_agent_last_reading_timestamp_seconds`. A null field is left out, not written as 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nodeagent.readings import GpuReading, NodeReading

MIB = 1024 * 1024

GPU_METRICS: list[tuple[str, str, Callable[[GpuReading], float | None]]] = [
    (
        "karimasu_gpu_utilization_ratio",
        "GPU busy fraction (NVML utilization.gpu / 100).",
        lambda g: None if g.utilization_gpu_pct is None else g.utilization_gpu_pct / 100,
    ),
    (
        "karimasu_gpu_memory_utilization_ratio",
        "Memory controller busy fraction.",
        lambda g: None if g.utilization_memory_pct is None else g.utilization_memory_pct / 100,
    ),
    (
        "karimasu_gpu_memory_used_bytes",
        "Framebuffer memory used.",
        lambda g: None if g.memory_used_mib is None else g.memory_used_mib * MIB,
    ),
    (
        "karimasu_gpu_memory_total_bytes",
        "Framebuffer memory total.",
        lambda g: None if g.memory_total_mib is None else g.memory_total_mib * MIB,
    ),
    ("karimasu_gpu_temperature_celsius", "GPU temperature.", lambda g: g.temperature_c),
    ("karimasu_gpu_power_usage_watts", "Power draw.", lambda g: g.power_draw_w),
    ("karimasu_gpu_power_limit_watts", "Enforced power limit.", lambda g: g.power_limit_w),
    (
        "karimasu_gpu_ecc_uncorrected_errors",
        "Volatile uncorrected ECC errors.",
        lambda g: None if g.ecc_uncorrected is None else float(g.ecc_uncorrected),
    ),
    (
        "karimasu_gpu_healthy",
        "1 if the GPU answered NVML, 0 if lost or failing.",
        lambda g: 1.0 if g.healthy else 0.0,
    ),
    (
        "karimasu_gpu_processes",
        "Compute processes on the GPU.",
        lambda g: None if g.processes is None else float(len(g.processes)),
    ),
    (
        "karimasu_gpu_foreign_processes",
        "Compute processes in no Karimasu pod.",
        lambda g: None if g.processes is None else float(sum(1 for p in g.processes if p.foreign)),
    ),
]


@dataclass
class AgentCounters:
    buffered: int = 0
    dropped_total: int = 0
    send_failures_total: int = 0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


def _job(gpu: GpuReading) -> str:
    ids = sorted({p.job_id for p in gpu.processes or [] if p.job_id is not None})
    return ",".join(str(i) for i in ids)


def render(node: str, reading: NodeReading | None, counters: AgentCounters) -> str:
    lines: list[str] = []
    gpus = reading.gpus if reading is not None else []
    for name, help_text, value_of in GPU_METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for gpu in gpus:
            value = value_of(gpu)
            if value is None:
                continue
            labels = {"node": node, "gpu": str(gpu.index), "uuid": gpu.uuid or "", "job": _job(gpu)}
            lines.append(f"{name}{_labels(labels)} {value:g}")
    agent = [
        (
            "karimasu_node_nvml_healthy",
            "gauge",
            "1 if the last reading's driver call worked.",
            None if reading is None else (1.0 if reading.healthy else 0.0),
        ),
        (
            "karimasu_agent_buffered_readings",
            "gauge",
            "Readings waiting for the portal.",
            float(counters.buffered),
        ),
        (
            "karimasu_agent_dropped_readings_total",
            "counter",
            "Readings dropped, buffer full.",
            float(counters.dropped_total),
        ),
        (
            "karimasu_agent_send_failures_total",
            "counter",
            "Batches the portal did not take.",
            float(counters.send_failures_total),
        ),
        (
            "karimasu_agent_last_reading_timestamp_seconds",
            "gauge",
            "Time of the last reading.",
            None if reading is None else reading.at.timestamp(),
        ),
    ]
    for name, kind, help_text, value in agent:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        if value is not None:
            lines.append(f'{name}{{node="{_escape(node)}"}} {value:g}')
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves `render_page()` on GET /metrics in a daemon thread; `port=0` picks one."""

    def __init__(
        self,
        render_page: Callable[[], str],
        host: str = "0.0.0.0",  # noqa: S104 (Prometheus scrapes the pod from outside)
        port: int = 9400,
    ) -> None:
        page = render_page

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = page().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
