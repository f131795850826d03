"""The GPU board: every GPU now, and who holds it (a job or a booking). Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler import states
from scheduler.models import LIVE_STATUSES, Job, Node, ReservationSlot


@dataclass
class GpuCell:
    index: int
    state: str  # free | job | booked | unhealthy
    holder: str = ""
    team: str = ""
    until: datetime | None = None
    ref: int | None = None


@dataclass
class NodeRow:
    name: str
    gpu_model: str
    schedulable: bool
    cordoned: bool
    ready: bool
    gpus: list[GpuCell] = field(default_factory=list)

    @property
    def free(self) -> int:
        return sum(1 for g in self.gpus if g.state == "free")


def gpu_board(*, now: datetime) -> list[NodeRow]:
    """One row per live node; a running job wins over a booking on the same GPU."""
    jobs = {}
    for job in Job.objects.filter(status__in=states.ON_CLUSTER, node__isnull=False).select_related(
        "owner", "team"
    ):
        began = job.started_at or job.admitted_at or now
        for index in job.gpu_indices or []:
            jobs[(job.node_id, index)] = (job, began)
    booked = {}
    slots = ReservationSlot.objects.filter(
        active=True, start__lte=now, end__gt=now, reservation__status__in=LIVE_STATUSES
    ).select_related("gpu", "reservation__holder", "reservation__team")
    for slot in slots:
        booked[(slot.gpu.node_id, slot.gpu.index)] = slot
    rows = []
    for node in Node.objects.filter(gone_at__isnull=True).prefetch_related("gpus"):
        row = NodeRow(node.name, node.gpu_model, node.schedulable, node.cordoned, node.ready)
        for gpu in node.gpus.all():
            if not gpu.present:
                continue
            key = (node.pk, gpu.index)
            if key in jobs:
                job, began = jobs[key]
                row.gpus.append(
                    GpuCell(
                        gpu.index,
                        "job",
                        job.owner.get_username(),
                        job.team.slug,
                        began + timedelta(seconds=job.max_runtime_s),
                        job.pk,
                    )
                )
            elif key in booked:
                slot = booked[key]
                row.gpus.append(
                    GpuCell(
                        gpu.index,
                        "booked",
                        slot.reservation.holder.get_username(),
                        slot.reservation.team.slug,
                        slot.end,
                        slot.reservation_id,
                    )
                )
            elif not gpu.healthy:
                row.gpus.append(GpuCell(gpu.index, "unhealthy"))
            else:
                row.gpus.append(GpuCell(gpu.index, "free"))
        rows.append(row)
    return rows
