"""What the node agent reads and sends: plain dataclasses, no Django.

One `NodeReading` is everything the agent saw on its node at one instant; a batch posted to
the portal carries one or more of them (the backlog after an outage). `to_dict()` is the wire
format documented in docs/telemetry.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class ProcessReading:
    """A compute process on a GPU. `foreign` is True when it runs in no Karimasu pod, None
    when the agent could not tell (a pod it has no labels for)."""

    pid: int
    used_memory_mib: float | None = None
    pod_uid: str | None = None
    job_id: int | None = None
    attempt: int | None = None
    foreign: bool | None = None


@dataclass
class GpuReading:
    index: int
    uuid: str | None = None
    name: str | None = None
    healthy: bool = True
    error: str | None = None
    memory_total_mib: float | None = None
    memory_used_mib: float | None = None
    utilization_gpu_pct: float | None = None
    utilization_memory_pct: float | None = None
    temperature_c: float | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    ecc_uncorrected: int | None = None
    throttle_reasons: list[str] | None = None
    processes: list[ProcessReading] | None = field(default_factory=list)


@dataclass
class NodeReading:
    """One reading of a node. `healthy=False` with `error` when the driver itself failed
    (then `gpus` may be empty)."""

    at: datetime
    gpus: list[GpuReading] = field(default_factory=list)
    healthy: bool = True
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["at"] = iso(self.at)
        return body


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z.

    >>> iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    '2026-01-02T03:04:05Z'
    """
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)
