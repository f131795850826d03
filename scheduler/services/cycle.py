"""One scheduling cycle: load a snapshot from the database, ask the pure core, apply.

1. lock        cycles never overlap (PostgreSQL advisory lock; SQLite's IMMEDIATE
               transactions serialize writers already)
2. snapshot    nodes, GPUs, running work, bookings, queue, usage, quotas -> core.Snapshot
3. decide      core.plan_cycle (the same function the simulator and benchmarks call)
4. apply       in one transaction: admissions (-> admitted), preemptions (-> preempted,
               GPUs held until the grace period ends), finished grace periods (->
               requeued), bookings the core ended, and every waiting job's reason,
               position and ETA
5. after commit  create the Jobs of the admitted on the cluster (-> starting) and stop the
               preempted. A crash between 4 and 5 leaves admitted rows that reconcile
               submits; a failed stop is retried by reconcile (the row no longer wants it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from scheduler import states
from scheduler.cluster.backend import ClusterBackend, ClusterError, ClusterRejected
from scheduler.core import snapshot as snap
from scheduler.core.cycle import plan_cycle as decide
from scheduler.core.decisions import CycleResult, Preempt
from scheduler.models import (
    LIVE_STATUSES,
    Job,
    Node,
    PriorityClass,
    Reservation,
    ReservationStatus,
    TeamPolicy,
    TeamQuota,
)
from scheduler.services.booking_policy import team_gpu_hours, team_zone, week_bounds
from scheduler.services.inventory import outside_gpu_indices
from scheduler.services.jobs import InvalidTransition, job_spec, requeue, transition_job
from scheduler.services.reservations import end_reservation
from scheduler.telemetry.detectors import foreign_gpus

log = logging.getLogger("karimasu.cycle")

LOCK_KEY = 0x4B41524D  # "KARM": the advisory lock id of the scheduling cycle
USAGE_HORIZON = timedelta(days=28)  # four half-lives: older usage weighs < 1/16


@dataclass
class CycleReport:
    skipped: bool = False
    admitted: list[int] = field(default_factory=list)
    preempted: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    waiting: int = 0


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- 2. snapshot -----------------------------------------------------------------------------


def build_snapshot(
    *, now: datetime, foreign_busy: frozenset[tuple[str, int]] = frozenset()
) -> snap.Snapshot:
    priorities = dict(PriorityClass.objects.values_list("name", "value"))
    held = Job.objects.filter(
        Q(status__in=states.ON_CLUSTER) | Q(status=states.PREEMPTED, terminating_until__gt=now),
        node__isnull=False,
    ).select_related("owner", "team", "node", "sweep")
    held_indices: dict[int, set[int]] = {}
    for job in held:
        if job.node_id is not None:  # always: node__isnull=False above
            held_indices.setdefault(job.node_id, set()).update(job.gpu_indices or ())
    nodes = tuple(
        _node(n, held_indices.get(n.pk, set()), foreign_busy)
        for n in Node.objects.filter(gone_at__isnull=True).prefetch_related("gpus")
    )
    allocations = tuple(_allocation(j, priorities) for j in held)
    queue = tuple(
        _queued(j, priorities)
        for j in Job.objects.filter(status=states.QUEUED).select_related("owner", "team", "sweep")
    )
    bookings = tuple(
        snap.Booking(
            id=str(r.pk),
            node=r.node.name,
            gpu_indices=tuple(sorted(s.gpu.index for s in r.slots.all())),
            start=_ts(r.start),
            end=_ts(r.end),
            user=r.holder.get_username(),
            team=r.team.slug if r.shared_with_team else None,  # exclusive unless shared
        )
        for r in Reservation.objects.filter(status__in=LIVE_STATUSES, end__gt=now)
        .select_related("node", "holder", "team")
        .prefetch_related("slots__gpu")
    )
    return snap.Snapshot(
        now=_ts(now),
        nodes=nodes,
        queue=queue,
        allocations=allocations,
        bookings=bookings,
        usage=_usage(now),
        quotas=_quotas(now),
        user_gpu_caps=_user_caps(),
        config=production_config(),
    )


def _node(node: Node, held: set[int], foreign_busy: frozenset[tuple[str, int]]) -> snap.Node:
    """The core's view of a node: what pods Karimasu did not create hold is taken off its
    CPU and memory, and as many of its GPUs as they hold are marked busy (never offered)."""
    gpus = [g for g in node.gpus.all() if g.present]
    telemetry = frozenset(g.index for g in gpus if (node.name, g.index) in foreign_busy)
    outside = outside_gpu_indices(node, [g.index for g in gpus], held, telemetry)
    return snap.Node(
        name=node.name,
        gpu_model=node.gpu_model,
        gpus=tuple(
            snap.Gpu(
                index=g.index,
                uuid=g.uuid,
                healthy=g.healthy,
                foreign_busy=g.index in telemetry or g.index in outside,
            )
            for g in gpus
        ),
        cpu_milli=max(0, node.cpu_allocatable_millis - node.foreign_cpu_millis),
        memory_mib=max(0, node.memory_allocatable_mb - node.foreign_memory_mb),
        cordoned=node.cordoned,
        ready=node.ready,
    )


def production_config() -> snap.Config:
    """Production's policy switches. Bookings are never released as no-shows by the core:
    idle bookings get a notice and are reclaimed from telemetry (`services/idle.py`)."""
    return snap.Config(packing=snap.Packing(settings.KARIMASU_PACKING), booking_no_show_s=None)


def _allocation(job: Job, priorities: dict[str, int]) -> snap.Allocation:
    began = job.held_since(job.submitted_at)
    return snap.Allocation(
        job_id=str(job.pk),
        team=job.team.slug,
        user=job.owner.get_username(),
        node=job.node.name if job.node else "",
        gpu_indices=tuple(job.gpu_indices or ()),
        started_at=_ts(began),
        max_runtime_s=float(job.max_runtime_s),
        priority=priorities.get(job.priority_class, 0),
        preemptible=job.preemptible,
        borrowed=job.borrowed,
        cpu_milli=job.cpu_millis,
        memory_mib=job.memory_mb,
        sweep_id=str(job.sweep_id) if job.sweep_id else None,
        terminating_until=_ts(job.terminating_until) if job.terminating_until else None,
    )


def _queued(job: Job, priorities: dict[str, int]) -> snap.QueuedJob:
    return snap.QueuedJob(
        id=str(job.pk),
        team=job.team.slug,
        user=job.owner.get_username(),
        gpus=job.gpus,
        max_runtime_s=float(job.max_runtime_s),
        submitted_at=_ts(job.submitted_at),
        models=frozenset(job.gpu_models or ()),
        cpu_milli=job.cpu_millis,
        memory_mib=job.memory_mb,
        priority=priorities.get(job.priority_class, 0),
        preemptible=job.preemptible,
        attempt=job.attempt - 1,
        sweep_id=str(job.sweep_id) if job.sweep_id else None,
        sweep_parallelism=job.sweep.parallelism if job.sweep else None,
    )


def _usage(now: datetime) -> tuple[snap.UsageRecord, ...]:
    """Finished jobs' GPU-seconds (running ones are added by the core)."""
    done = Job.objects.filter(
        finished_at__gte=now - USAGE_HORIZON, started_at__isnull=False, gpus__gt=0
    ).select_related("owner", "team")
    return tuple(
        snap.UsageRecord(
            team=j.team.slug,
            user=j.owner.get_username(),
            gpu_seconds=j.gpus * (j.finished_at - j.started_at).total_seconds(),
            at=_ts(j.finished_at),
        )
        for j in done
        if j.finished_at is not None and j.started_at is not None  # always: filtered above
    )


def _quotas(now: datetime) -> dict[str, snap.TeamQuota]:
    quotas = {q.team_id: q for q in TeamQuota.objects.all()}
    budgets = {
        p.team_id: p
        for p in TeamPolicy.objects.filter(weekly_gpu_hours__isnull=False).select_related("team")
    }
    result = {}
    for team_id in set(quotas) | set(budgets):
        quota, policy = quotas.get(team_id), budgets.get(team_id)
        team = (quota or policy).team  # type: ignore[union-attr]
        result[team.slug] = snap.TeamQuota(
            team=team.slug,
            guaranteed_gpus=quota.guaranteed_gpus if quota else 0,
            borrowing_allowed=quota.borrowing_allowed if quota else True,
            borrowing_limit=quota.borrowing_limit if quota else None,
            share_weight=quota.share_weight if quota else 1.0,
            weekly_gpu_hours=policy.weekly_gpu_hours if policy else None,
            spent_gpu_hours=team_gpu_hours(team, *week_bounds(now, team_zone(policy)), now=now)
            if policy
            else 0.0,
        )
    return result


def _user_caps() -> dict[str, int]:
    caps: dict[str, int] = {}
    for quota in TeamQuota.objects.filter(user_gpu_cap__isnull=False).prefetch_related(
        "team__memberships__user"
    ):
        cap = quota.user_gpu_cap
        if cap is None:  # never: filtered above
            continue
        for membership in quota.team.memberships.all():
            name = membership.user.get_username()
            caps[name] = min(caps.get(name, cap), cap)
    return caps


# --- 1, 3, 4, 5 ---------------------------------------------------------------------------------


def _lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        return bool(cursor.fetchone()[0])


def run_cycle(
    backend: ClusterBackend | None,
    *,
    now: datetime,
    foreign_busy: frozenset[tuple[str, int]] | None = None,
) -> CycleReport:
    """One full cycle. `backend` None decides and records without touching a cluster
    (the admitted jobs wait in `admitted` until reconcile submits them). GPUs the node
    agents see busy with processes from outside Karimasu are not placed on; `foreign_busy`
    overrides what telemetry says (tests, the simulator)."""
    report = CycleReport()
    with transaction.atomic():
        if not _lock():
            log.info("cycle.skipped another cycle holds the lock")
            return CycleReport(skipped=True)
        if foreign_busy is None:
            foreign_busy = frozenset((g.node, g.index) for g in foreign_gpus(now=now))
        snapshot = build_snapshot(now=now, foreign_busy=foreign_busy)
        result = decide(snapshot)
        jobs = Job.objects.select_related("owner", "team", "node").in_bulk(
            [
                int(x)
                for x in {
                    *(a.job_id for a in result.admitted),
                    *(p.job_id for p in result.preempted),
                }
            ]
        )
        _requeue_finished_grace(now, report)
        _apply_admissions(result, jobs, now, report)
        _apply_preemptions(result, jobs, now, report)
        _apply_releases(result, now)
        report.waiting = _record_waiting(result)
    if backend is not None:
        _after(backend, report)
    log.info(
        "cycle.done admitted=%s preempted=%s requeued=%s waiting=%s",
        report.admitted,
        report.preempted,
        report.requeued,
        report.waiting,
    )
    return report


def _requeue_finished_grace(now: datetime, report: CycleReport) -> None:
    for job in Job.objects.filter(status=states.PREEMPTED, terminating_until__lte=now):
        requeue(job, now=now, reason="preempted", message="Requeued after preemption.")
        report.requeued.append(job.pk)


def _apply_admissions(
    result: CycleResult, jobs: dict[int, Job], now: datetime, report: CycleReport
) -> None:
    nodes = {n.name: n for n in Node.objects.filter(name__in={a.node for a in result.admitted})}
    for admit in result.admitted:
        job = jobs.get(int(admit.job_id))
        if job is None or job.status != states.QUEUED:
            continue
        transition_job(
            job,
            states.ADMITTED,
            now=now,
            reason="admitted",
            node=nodes[admit.node],
            gpu_indices=list(admit.gpu_indices),
            borrowed=admit.borrowed,
            admitted_at=now,
            queue_position=None,
            eta=None,
        )
        report.admitted.append(job.pk)


def _preempted_message(preempt: Preempt, jobs: dict[int, Job]) -> str:
    """Why a job was stopped, in words its owner can act on: whose work took the GPUs (the
    team, not a job page the owner may not see) and for what reason."""
    by = jobs.get(int(preempt.by_job)) if str(preempt.by_job).isdigit() else None
    who = f"a {by.gpus}-GPU job of team {by.team.slug}" if by is not None else "another job"
    why = {
        "reclaim": "that team is taking back GPUs it is guaranteed, which this job borrowed",
        "priority": "it has a higher priority class",
    }.get(str(preempt.reason), str(preempt.reason))
    return f"Stopped to make room for {who}: {why}. It is queued again as a new attempt."


def _apply_preemptions(
    result: CycleResult, jobs: dict[int, Job], now: datetime, report: CycleReport
) -> None:
    for preempt in result.preempted:
        job = jobs.get(int(preempt.job_id))
        if job is None or job.status not in states.ON_CLUSTER:
            continue
        transition_job(
            job,
            states.PREEMPTED,
            now=now,
            reason=f"preempted_{preempt.reason}",
            message=_preempted_message(preempt, jobs),
            terminating_until=now + timedelta(seconds=preempt.grace_s),
        )
        report.preempted.append(job.pk)


def _apply_releases(result: CycleResult, now: datetime) -> None:
    for release in result.released:
        reservation = Reservation.objects.filter(pk=int(release.booking_id)).first()
        if reservation is None:
            continue
        status = (
            ReservationStatus.RECLAIMED
            if release.reason == "no-show"
            else ReservationStatus.EXPIRED
        )
        end_reservation(None, reservation, now=now, status=status)


def _record_waiting(result: CycleResult) -> int:
    rows = []
    for waiting in result.waiting:
        rows.append(
            Job(
                pk=int(waiting.job_id),
                reason=waiting.reason.value,
                message=waiting.detail[:1000],
                queue_position=waiting.position,
                eta=_dt(waiting.eta) if waiting.eta is not None else None,
            )
        )
    # Only queued rows: a job cancelled meanwhile keeps its own reason.
    queued = set(
        Job.objects.filter(pk__in=[r.pk for r in rows], status=states.QUEUED).values_list(
            "pk", flat=True
        )
    )
    Job.objects.bulk_update(
        [r for r in rows if r.pk in queued],
        ["reason", "message", "queue_position", "eta"],
        batch_size=500,
    )
    return len(queued)


def _after(backend: ClusterBackend, report: CycleReport) -> None:
    now = datetime.now(tz=UTC)
    for job in Job.objects.filter(pk__in=report.admitted, status=states.ADMITTED).select_related(
        "owner", "team", "node"
    ):
        try:
            backend.submit(job_spec(job))
            transition_job(job, states.STARTING, now=now, reason="submitted")
        except ClusterRejected as exc:
            from scheduler.services.reconcile import fail_rejected

            fail_rejected(job, exc, now)
        except (ClusterError, InvalidTransition) as exc:
            log.warning("cycle.submit_deferred job=%s %s: reconcile will retry", job.pk, exc)
    for job in Job.objects.filter(pk__in=report.preempted):
        grace = int((job.terminating_until - now).total_seconds()) if job.terminating_until else 0
        try:
            backend.cancel(job.pk, job.attempt, grace_s=max(grace, 0))
        except ClusterError as exc:
            log.warning("cycle.stop_deferred job=%s %s: reconcile will retry", job.pk, exc)
