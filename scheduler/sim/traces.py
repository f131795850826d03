"""Loaders for the traces in ``/work/shared/traces`` (see its README for the columns).

Alibaba openb v2023 (pod list + node list):
- A pod's run time is ``deletion_time - scheduled_time`` and it arrives at ``creation_time``.
  Pods never scheduled (no ``scheduled_time``, the trace's ``Pending`` ones) have no run time
  to replay and are skipped; ``Failed`` pods did run and are kept.
- **Fractional GPUs**: Karimasu hands out whole GPUs (``nvidia.com/gpu``, no sharing), so a
  pod asking for ``gpu_milli`` < 1000 of one GPU gets one whole GPU: ``ceil(num_gpu *
  gpu_milli / 1000)``. This overstates GPU demand (about 3,000 of the 8,152 pods are
  fractional) but is what the portal would actually do with such a request.
- ``gpu_spec`` (``V100M16|V100M32``) becomes the set of acceptable models; empty = any.
- Pods have no owner; ``qos`` (LS, BE, Burstable...) stands in for the team and the user.
- ``multigpu50`` has no time columns and cannot be replayed: loading it raises TraceError.

Philly (AdaptDL's condensed CSV): ``timestamp`` (arrival), ``duration``, ``num_gpus``,
``cluster`` (the virtual cluster, used as team and user). Jobs wider than one node are kept
as they are: the simulator replays them as gangs of whole nodes (``simulator.as_gang``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scheduler.core.snapshot import Gpu, Node

TRACES_DIR = Path("/work/shared/traces")
ALIBABA_PODS = TRACES_DIR / "alibaba_v2023_openb_pod_list_default.csv"
ALIBABA_NODES = TRACES_DIR / "alibaba_v2023_openb_node_list_gpu_node.csv"
PHILLY = TRACES_DIR / "philly.csv"


class TraceError(ValueError):
    """A trace file this loader cannot replay (missing columns, bad values)."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace: arrival ``submit_s`` (from the trace's start) and real run time."""

    id: str
    team: str
    user: str
    gpus: int
    submit_s: float
    runtime_s: float
    models: frozenset[str] = frozenset()
    cpu_milli: int = 0
    memory_mib: int = 0


def _rebase(jobs: list[TraceJob], limit: int | None) -> list[TraceJob]:
    jobs.sort(key=lambda j: (j.submit_s, j.id))
    if limit is not None:
        jobs = jobs[:limit]
    if not jobs:
        return jobs
    t0 = jobs[0].submit_s
    return [
        TraceJob(
            j.id,
            j.team,
            j.user,
            j.gpus,
            j.submit_s - t0,
            j.runtime_s,
            j.models,
            j.cpu_milli,
            j.memory_mib,
        )
        for j in jobs
    ]


def load_alibaba_pods(path: Path = ALIBABA_PODS, limit: int | None = None) -> list[TraceJob]:
    """The pods of an openb pod list that ran, in arrival order, times from the first."""
    jobs: list[TraceJob] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        needed = {"creation_time", "deletion_time", "scheduled_time", "num_gpu", "gpu_milli"}
        if not needed <= set(reader.fieldnames or ()):
            raise TraceError(f"{path.name} lacks {sorted(needed - set(reader.fieldnames or ()))}")
        for row in reader:
            if not row["scheduled_time"] or not row["deletion_time"]:
                continue  # never ran: nothing to replay
            num, milli = int(row["num_gpu"]), int(row["gpu_milli"])
            gpus = math.ceil(num * milli / 1000) if num > 0 else 0
            spec = row.get("gpu_spec") or ""
            qos = row.get("qos") or "default"
            jobs.append(
                TraceJob(
                    id=row["name"],
                    team=qos,
                    user=qos,
                    gpus=gpus,
                    submit_s=float(row["creation_time"]),
                    runtime_s=max(1.0, float(row["deletion_time"]) - float(row["scheduled_time"])),
                    models=frozenset(m for m in spec.split("|") if m),
                    cpu_milli=int(row["cpu_milli"]),
                    memory_mib=int(row["memory_mib"]),
                )
            )
    return _rebase(jobs, limit)


def load_alibaba_nodes(path: Path = ALIBABA_NODES, every: int = 1) -> tuple[Node, ...]:
    """The GPU nodes of the openb cluster; ``every`` > 1 keeps every n-th (a smaller cluster)."""
    nodes: list[Node] = []
    with path.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i % every:
                continue
            gpus = tuple(Gpu(g, uuid=f"{row['sn']}-gpu{g}") for g in range(int(row["gpu"])))
            nodes.append(
                Node(row["sn"], row["model"], gpus, int(row["cpu_milli"]), int(row["memory_mib"]))
            )
    return tuple(nodes)


def load_philly(
    path: Path = PHILLY, clusters: frozenset[str] | None = None, limit: int | None = None
) -> list[TraceJob]:
    """Philly jobs (optionally of some virtual clusters), in arrival order."""
    jobs: list[TraceJob] = []
    with path.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if clusters is not None and row["cluster"] not in clusters:
                continue
            when = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            jobs.append(
                TraceJob(
                    id=f"philly-{i}",
                    team=row["cluster"],
                    user=row["cluster"],
                    gpus=int(row["num_gpus"]),
                    submit_s=when.timestamp(),
                    runtime_s=max(1.0, float(row["duration"])),
                )
            )
    return _rebase(jobs, limit)


def uniform_nodes(count: int, gpus_per_node: int, model: str = "V100") -> tuple[Node, ...]:
    """``count`` identical nodes (for Philly, which has no node list)."""
    return tuple(
        Node(f"node-{i:03d}", model, tuple(Gpu(g) for g in range(gpus_per_node)))
        for i in range(count)
    )
