"""Celery tasks of the scheduler: ids in, one service call, safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from scheduler.cluster.backend import ClusterUnavailable
from scheduler.cluster.factory import cluster_backend
from scheduler.services.inventory import sync_inventory
from scheduler.services.reconcile import reconcile

log = logging.getLogger("karimasu.scheduler")


@shared_task(name="scheduler.sync_cluster", ignore_result=True)
def sync_cluster() -> dict[str, object]:
    """Periodic (beat): inventory and reconcile. An unreachable cluster is logged, not raised:
    the next beat tries again and nothing is lost in between."""
    try:
        backend = cluster_backend()
        now = timezone.now()
        inventory = sync_inventory(backend, now=now)
    except ClusterUnavailable as exc:
        log.warning("sync_cluster.unavailable %s", exc)
        return {"unavailable": True}
    result = reconcile(backend, now=now)
    return {"nodes": inventory.nodes, "unavailable": result.unavailable, "changed": result.changed}


@shared_task(
    name="scheduler.notify_reservation",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
)
def notify_reservation(event: str, reservation_id: int) -> None:
    from scheduler.services.notifications import send_reservation_notice

    send_reservation_notice(event, reservation_id)


@shared_task(name="scheduler.advance_reservations", ignore_result=True)
def advance_reservations() -> int:
    """Periodic (beat): booked -> active -> expired as time passes. Safe to run twice."""
    from scheduler.services.reservations import advance_reservations as advance

    return advance(now=timezone.now())


@shared_task(name="scheduler.schedule_cycle", ignore_result=True)
def schedule_cycle() -> dict[str, object]:
    """On every submit, finish, cancel and booking change (on commit), and from beat.
    Overlapping calls are harmless: the cycle takes a lock and skips when it is held."""
    from scheduler.services.cycle import run_cycle

    try:
        backend = cluster_backend()
    except ClusterUnavailable as exc:
        log.warning("schedule_cycle.no_cluster %s: deciding only", exc)
        backend = None
    report = run_cycle(backend, now=timezone.now())
    return {"admitted": report.admitted, "preempted": report.preempted, "skipped": report.skipped}


@shared_task(
    name="scheduler.delete_from_cluster",
    ignore_result=True,
    autoretry_for=(ClusterUnavailable,),
    retry_backoff=True,
    max_retries=5,
)
def delete_from_cluster(job_id: int, attempt: int) -> bool:
    """Stop a cancelled job's attempt. If every retry fails, reconcile deletes it later."""
    return cluster_backend().cancel(job_id, attempt)


@shared_task(name="scheduler.check_idle_bookings", ignore_result=True)
def check_idle_bookings() -> dict[str, list[int]]:
    """Periodic (beat): "use it or lose it" for idle bookings, judged by GPU telemetry."""
    from scheduler.services.idle import check_idle_bookings as check
    from scheduler.telemetry.detectors import reservation_is_idle

    report = check(now=timezone.now(), is_idle=reservation_is_idle)
    return {"noticed": report.noticed, "reclaimed": report.reclaimed}


@shared_task(
    name="scheduler.submit_admitted",
    ignore_result=True,
    autoretry_for=(ClusterUnavailable,),
    retry_backoff=True,
    max_retries=3,
)
def submit_admitted(job_id: int) -> bool:
    """A session's job, admitted onto its booking: create it on the cluster now. If this
    fails for good, reconcile submits it on its next pass."""
    from scheduler.services.sessions import submit_admitted as submit

    return submit(cluster_backend(), job_id, now=timezone.now())


@shared_task(
    name="scheduler.sync_deadline",
    ignore_result=True,
    autoretry_for=(ClusterUnavailable,),
    retry_backoff=True,
    max_retries=5,
)
def sync_deadline(job_id: int) -> bool:
    """An extended session: move its Kubernetes Job's deadline too."""
    from scheduler.services.sessions import sync_deadline as sync

    return sync(cluster_backend(), job_id)


@shared_task(name="scheduler.notify_session", ignore_result=True)
def notify_session(session_id: int, minutes: int) -> bool:
    from scheduler.services.sessions import send_session_warning

    return send_session_warning(session_id, minutes)


@shared_task(name="scheduler.session_lifecycle", ignore_result=True)
def session_lifecycle() -> dict[str, object]:
    """Periodic (beat): warn before a session's booking (or on-demand duration) ends, stop it
    at the end, cull idle
    sessions (GPU telemetry and the workspace's own activity)."""
    from scheduler.cluster.podproxy import workspace_last_activity
    from scheduler.services.sessions import run_lifecycle
    from scheduler.telemetry.detectors import session_is_idle

    report = run_lifecycle(
        now=timezone.now(),
        is_idle=session_is_idle,
        last_activity=lambda s: workspace_last_activity(s.job_id, s.job.attempt, s.port, s.path),
    )
    return {"warned": report.warned, "stopped": report.stopped, "culled": report.culled}
