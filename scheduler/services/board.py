"""Who holds each GPU now (a job or a booking), for the GPU board and `/api/v1/nodes/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Prefetch

from portal.accounts.models import User
from portal.querysets import prebuilt
from scheduler import states
from scheduler.models import LIVE_STATUSES, Gpu, Job, Node, ReservationSlot
from scheduler.models.jobs import gpus_by_node, gpus_held_until
from scheduler.services.inventory import outside_gpu_indices
from scheduler.telemetry.models import GpuMinute


@dataclass(frozen=True)
class Holder:
    kind: str  # "job" | "booking"
    id: int
    user: str
    team: str
    until: datetime


@dataclass
class GpuCell:
    index: int
    state: str  # free | job | booking | unhealthy | outside (held by a pod not Karimasu's)
    holder: Holder | None = None
    utilization: float | None = None  # the node agent's latest reading, percent
    #: The last hour's utilization, one point a minute, as SVG polyline points in a 60 x 16
    #: box (x: minutes ago from the left, y: 0 % at the bottom); empty without readings.
    sparkline: str = ""


@dataclass
class NodeRow:
    name: str
    gpu_model: str
    schedulable: bool
    cordoned: bool
    ready: bool
    gpus: list[GpuCell] = field(default_factory=list)
    # "dra": a job gets exactly the GPUs shown; "device-plugin": per count, the cluster picks.
    gpu_allocation: str = "device-plugin"

    @property
    def free(self) -> int:
        return sum(1 for g in self.gpus if g.state == "free")


# Plain rows, not model instances, set up once: `/api/v1/nodes/` reads them on every call.
@prebuilt
def _slot_rows() -> Any:
    return ReservationSlot.objects.values_list(
        "gpu__node_id",
        "gpu__index",
        "reservation_id",
        f"reservation__holder__{User.USERNAME_FIELD}",
        "reservation__team__slug",
        "end",
    )


@prebuilt
def _job_rows() -> Any:
    return Job.objects.values_list(
        "pk",
        "node__name",
        "node_id",
        "gpu_indices",
        "placements",
        "started_at",
        "admitted_at",
        "max_runtime_s",
        f"owner__{User.USERNAME_FIELD}",
        "team__slug",
    )


def gpu_holders(*, now: datetime) -> dict[tuple[int, int], Holder]:
    """(node id, GPU index) -> its holder. A job on the GPU wins over a booking of it."""
    holders: dict[tuple[int, int], Holder] = {}
    slots = _slot_rows().filter(
        active=True, start__lte=now, end__gt=now, reservation__status__in=LIVE_STATUSES
    )
    for node_id, index, reservation_id, holder, team, end in slots:
        holders[(node_id, index)] = Holder("booking", reservation_id, holder, team, end)
    jobs = _job_rows().filter(status__in=states.ON_CLUSTER, node__isnull=False)
    node_ids: dict[str, int] = {}
    for row in jobs:
        pk, node, node_pk, indices, placed, started_at, admitted_at, max_runtime_s, owner, team = (
            row
        )
        until = gpus_held_until(started_at, admitted_at, max_runtime_s, now)
        node_ids[node] = node_pk
        if placed and not set(p.get("node") for p in placed) <= node_ids.keys():
            # a gang's ranks name their nodes: names -> ids, once, only when one is needed
            node_ids.update(Node.objects.values_list("name", "pk"))
        for name, held in gpus_by_node(node, indices, placed).items():
            for index in held:
                holders[(node_ids.get(name, -1), index)] = Holder("job", pk, owner, team, until)
    return holders


def outside_gpus(nodes: list[Node], holders: dict[tuple[int, int], Holder]) -> set[tuple[int, int]]:
    """(node id, GPU index) of the GPUs shown as in use outside Karimasu (pods it did not
    create hold them; see ``inventory.outside_gpu_indices``). Nodes come with their GPUs."""
    found: set[tuple[int, int]] = set()
    for node in nodes:
        present = [g.index for g in node.gpus.all() if g.present]
        jobs = {
            i
            for i in present
            if (holder := holders.get((node.pk, i))) is not None and holder.kind == "job"
        }
        found |= {(node.pk, i) for i in outside_gpu_indices(node, present, jobs)}
    return found


def gpu_board(*, now: datetime) -> list[NodeRow]:
    """One row per live node with each present GPU's state."""
    holders = gpu_holders(now=now)
    lines = utilization_sparklines(now=now)
    rows = []
    gpus = Gpu.objects.select_related("telemetry_state")
    nodes = list(
        Node.objects.filter(gone_at__isnull=True).prefetch_related(Prefetch("gpus", queryset=gpus))
    )
    outside = outside_gpus(nodes, holders)
    for node in nodes:
        row = NodeRow(
            node.name,
            node.gpu_model,
            node.schedulable,
            node.cordoned,
            node.ready,
            gpu_allocation=node.gpu_allocation,
        )
        for gpu in node.gpus.all():
            if not gpu.present:
                continue
            holder = holders.get((node.pk, gpu.index))
            state = getattr(gpu, "telemetry_state", None)
            util = state.utilization if state is not None else None
            line = lines.get(gpu.pk, "")
            if holder is not None and holder.kind == "job":
                row.gpus.append(GpuCell(gpu.index, holder.kind, holder, util, line))
            elif (node.pk, gpu.index) in outside:
                row.gpus.append(GpuCell(gpu.index, "outside", None, util, line))
            elif holder is not None:
                row.gpus.append(GpuCell(gpu.index, holder.kind, holder, util, line))
            elif not gpu.healthy:
                row.gpus.append(GpuCell(gpu.index, "unhealthy", None, util, line))
            else:
                row.gpus.append(GpuCell(gpu.index, "free", None, util, line))
        rows.append(row)
    return rows


SPARK_MINUTES = 60
SPARK_HEIGHT = 16


def utilization_sparklines(*, now: datetime) -> dict[int, str]:
    """GPU id -> the last hour's mean utilization per minute as polyline points (see
    ``GpuCell.sparkline``), from the telemetry's one-minute rollups: one query for all GPUs."""
    start = (now - timedelta(minutes=SPARK_MINUTES)).replace(second=0, microsecond=0)
    rows = GpuMinute.objects.filter(minute__gte=start, utilization_samples__gt=0).values_list(
        "gpu_id", "minute", "utilization_sum", "utilization_samples"
    )
    points: dict[int, list[tuple[int, float]]] = {}
    for gpu_id, minute, total, count in rows:
        x = int((minute - start).total_seconds() // 60)
        if 0 <= x <= SPARK_MINUTES:
            percent = min(max(total / count, 0.0), 100.0)
            points.setdefault(gpu_id, []).append((x, percent))
    return {
        gpu_id: " ".join(
            f"{x},{SPARK_HEIGHT - percent * SPARK_HEIGHT / 100:.1f}" for x, percent in sorted(line)
        )
        for gpu_id, line in points.items()
    }
