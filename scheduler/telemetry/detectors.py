"""Detectors other features call (idle auto-release, the scheduler's foreign-busy GPUs, alerts).

Each takes `now` (and thresholds with defaults) and returns identifiers; none writes.

- `idle_gpus`: GPUs whose utilization stayed under a threshold (default 5%) for a window.
- `foreign_gpus`: GPUs whose latest fresh reading shows a process in no Karimasu pod.
- `stale_nodes`: nodes whose agent reported before but not for 2 minutes.
- `unhealthy_gpus`: GPUs whose latest reading says lost or failing.
- `reservation_is_idle`: the `is_idle(reservation, since, until)` that
  `scheduler.services.idle.check_idle_bookings` takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min

from scheduler.models import Gpu, Reservation, Session
from scheduler.telemetry.models import GpuSample, GpuState, NodeAgentState
from scheduler.telemetry.services import idle_percent

STALE_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class GpuRef:
    node: str
    index: int
    gpu_id: int


def _idle_gpu_ids(
    gpu_ids: list[int] | None, since: datetime, until: datetime, threshold: float
) -> set[int]:
    """GPUs with samples covering [since, until] (first within 2 minutes of `since`), all
    under `threshold`. No samples means unknown, not idle."""
    rows = GpuSample.objects.filter(at__gte=since, at__lte=until)
    if gpu_ids is not None:
        rows = rows.filter(gpu_id__in=gpu_ids)
    stats = rows.values("gpu_id").annotate(top=Max("utilization"), first=Min("at"), n=Count("id"))
    return {
        s["gpu_id"]
        for s in stats
        if s["top"] is not None and s["top"] < threshold and s["first"] <= since + STALE_AFTER
    }


def idle_gpus(
    *, now: datetime, window: timedelta = timedelta(minutes=15), threshold: float | None = None
) -> list[GpuRef]:
    threshold = idle_percent() if threshold is None else threshold
    ids = _idle_gpu_ids(None, now - window, now, threshold)
    return _refs(ids)


def foreign_gpus(*, now: datetime, fresh: timedelta = STALE_AFTER) -> list[GpuRef]:
    ids = GpuState.objects.filter(at__gte=now - fresh, foreign_processes__gt=0).values_list(
        "gpu_id", flat=True
    )
    return _refs(set(ids))


def unhealthy_gpus(*, now: datetime) -> list[GpuRef]:
    return _refs(set(GpuState.objects.filter(healthy=False).values_list("gpu_id", flat=True)))


def stale_nodes(*, now: datetime, after: timedelta = STALE_AFTER) -> list[str]:
    rows = NodeAgentState.objects.filter(
        last_reading_at__lt=now - after, node__gone_at__isnull=True
    )
    return sorted(rows.values_list("node__name", flat=True))


def reservation_is_idle(reservation: Reservation, since: datetime, until: datetime) -> bool:
    """True when every GPU of the booking was idle over [since, until] (threshold from
    `KARIMASU_IDLE_THRESHOLD_PERCENT`)."""
    gpu_ids = list(reservation.slots.filter(active=True).values_list("gpu_id", flat=True))
    if not gpu_ids:
        return False
    return _idle_gpu_ids(gpu_ids, since, until, idle_percent()) == set(gpu_ids)


def session_is_idle(session: Session, since: datetime, until: datetime) -> bool:
    """True when every GPU of the session was idle over [since, until]: its booking's GPUs,
    or (on demand) those its job was placed on."""
    if session.reservation is not None:
        return reservation_is_idle(session.reservation, since, until)
    job = session.job
    if job.node_id is None:
        return False
    gpu_ids = list(
        Gpu.objects.filter(node_id=job.node_id, index__in=job.gpu_indices).values_list(
            "pk", flat=True
        )
    )
    if not gpu_ids:
        return False
    return _idle_gpu_ids(gpu_ids, since, until, idle_percent()) == set(gpu_ids)


def _refs(gpu_ids: set[int]) -> list[GpuRef]:
    rows = Gpu.objects.filter(pk__in=gpu_ids).select_related("node").order_by("node__name", "index")
    return [GpuRef(g.node.name, g.index, g.pk) for g in rows]
