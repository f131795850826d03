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

import gc
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F, FloatField, Func, Q, TextField
from django.db.models.functions import Cast

from scheduler import states
from scheduler.cluster.backend import ClusterBackend, ClusterError, ClusterRejected
from scheduler.core import snapshot as snap
from scheduler.core.cycle import plan_cycle as decide
from scheduler.core.decisions import CycleResult, Preempt
from scheduler.models import (
    LIVE_STATUSES,
    Gpu,
    Job,
    Node,
    PriorityClass,
    Reservation,
    ReservationSlot,
    ReservationStatus,
    TeamPolicy,
    TeamQuota,
)
from scheduler.services.booking_policy import team_gpu_hours, team_zone, week_bounds
from scheduler.services.inventory import outside_gpu_indices
from scheduler.services.jobs import (
    InvalidTransition,
    job_column,
    job_spec,
    requeue,
    transition_job,
    transition_jobs,
)
from scheduler.services.reservations import end_reservation
from scheduler.telemetry.detectors import foreign_gpus

log = logging.getLogger("karimasu.cycle")

LOCK_KEY = 0x4B41524D  # "KARM": the advisory lock id of the scheduling cycle
USAGE_HORIZON = timedelta(days=28)  # four half-lives: older usage weighs < 1/16


DECIDED_COLUMNS = ("pk", "status", "attempt", "gpus", "team__slug")


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
    """The core's view of the database. Jobs and bookings are read as plain rows
    (`values_list`, one query each), not model instances: 10k queued jobs cost one pass."""
    priorities = dict(PriorityClass.objects.values_list("name", "value"))
    allocations, held_indices = _allocations(now, priorities)
    nodes = _nodes(held_indices, foreign_busy)
    return snap.Snapshot(
        now=_ts(now),
        nodes=nodes,
        queue=_queue(priorities),
        allocations=allocations,
        bookings=_bookings(now),
        usage=_usage(now),
        quotas=_quotas(now),
        user_gpu_caps=_user_caps(),
        config=production_config(),
    )


class _Epoch(Func):
    """A timestamp as seconds since the epoch (PostgreSQL): the float `datetime.timestamp()`
    gives (both round the exact microseconds once), without a datetime per row."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)::float8"
    output_field = FloatField()


def _seconds(column: str) -> Func | F:
    return _Epoch(column) if connection.vendor == "postgresql" else F(column)


def _timestamp(value: float | datetime) -> float:
    return value if isinstance(value, float) else value.timestamp()


def _username() -> str:
    """The column behind `get_username()` of a job's owner, for `values_list`."""
    return f"owner__{get_user_model().USERNAME_FIELD}"


def _allocations(
    now: datetime, priorities: dict[str, int]
) -> tuple[tuple[snap.Allocation, ...], dict[str, set[int]]]:
    """Running work (and preempted jobs still in their grace period) as the core's
    allocations, and the GPU indices they hold per node name."""
    rows = (
        Job.objects.filter(
            Q(status__in=states.ON_CLUSTER)
            | Q(status=states.PREEMPTED, terminating_until__gt=now),
            node__isnull=False,
        )
        .values_list(
            "pk", "team__slug", _username(), "node__name", "gpu_indices", "started_at",
            "admitted_at", "submitted_at", "max_runtime_s", "priority_class", "preemptible",
            "borrowed", "cpu_millis", "memory_mb", "sweep_id", "terminating_until",
        )
    )  # fmt: skip
    allocations = []
    held: dict[str, set[int]] = {}
    for (
        pk, team, user, node, indices, started, admitted, submitted, runtime, priority,
        preemptible, borrowed, cpu, memory, sweep, terminating,
    ) in rows:  # fmt: skip
        held.setdefault(node, set()).update(indices or ())
        allocations.append(
            snap.Allocation(
                job_id=str(pk),
                team=team,
                user=user,
                node=node,
                gpu_indices=tuple(indices or ()),
                started_at=(started or admitted or submitted).timestamp(),  # Job.held_since
                max_runtime_s=float(runtime),
                priority=priorities.get(priority, 0),
                preemptible=preemptible,
                borrowed=borrowed,
                cpu_milli=cpu,
                memory_mib=memory,
                sweep_id=str(sweep) if sweep else None,
                terminating_until=terminating.timestamp() if terminating else None,
            )
        )
    return tuple(allocations), held


def _queue(priorities: dict[str, int]) -> tuple[snap.QueuedJob, ...]:
    # The acceptable models as JSON text, parsed once per distinct list (there are few).
    rows = (
        Job.objects.filter(status=states.QUEUED)
        .annotate(models_json=Cast("gpu_models", TextField()), submitted=_seconds("submitted_at"))
        .values_list(
            "pk", "team__slug", _username(), "gpus", "max_runtime_s", "submitted",
            "models_json", "cpu_millis", "memory_mb", "priority_class", "preemptible",
            "attempt", "sweep_id", "sweep__parallelism",
        )
    )  # fmt: skip
    parsed: dict[str | None, frozenset[str]] = {}
    queue = []
    for (
        pk, team, user, gpus, runtime, submitted, models, cpu, memory, priority,
        preemptible, attempt, sweep, parallelism,
    ) in rows:  # fmt: skip
        if models not in parsed:
            parsed[models] = _models(models)
        queue.append(
            snap.QueuedJob(
                id=str(pk),
                team=team,
                user=user,
                gpus=gpus,
                max_runtime_s=float(runtime),
                submitted_at=_timestamp(submitted),
                models=parsed[models],
                cpu_milli=cpu,
                memory_mib=memory,
                priority=priorities.get(priority, 0),
                preemptible=preemptible,
                attempt=attempt - 1,
                sweep_id=str(sweep) if sweep else None,
                sweep_parallelism=parallelism if sweep else None,
            )
        )
    return tuple(queue)


def _models(text: str | None) -> frozenset[str]:
    return frozenset(json.loads(text) or ()) if text else frozenset()


def _bookings(now: datetime) -> tuple[snap.Booking, ...]:
    live = Reservation.objects.filter(status__in=LIVE_STATUSES, end__gt=now)
    indices: dict[int, list[int]] = {}
    for reservation, index in ReservationSlot.objects.filter(
        reservation__in=live.values("pk")
    ).values_list("reservation_id", "gpu__index"):
        indices.setdefault(reservation, []).append(index)
    holder = f"holder__{get_user_model().USERNAME_FIELD}"
    return tuple(
        snap.Booking(
            id=str(pk),
            node=node,
            gpu_indices=tuple(sorted(indices.get(pk, ()))),
            start=start.timestamp(),
            end=end.timestamp(),
            user=user,
            team=team if shared else None,  # exclusive unless shared
        )
        for pk, node, start, end, user, team, shared in live.values_list(
            "pk", "node__name", "start", "end", holder, "team__slug", "shared_with_team"
        )
    )


NODE_COLUMNS = (
    "pk", "name", "gpu_model", "cpu_allocatable_millis", "foreign_cpu_millis",
    "memory_allocatable_mb", "foreign_memory_mb", "cordoned", "ready", "foreign_gpus",
    "gpu_capacity", "gpu_allocatable",
)  # fmt: skip


def _nodes(
    held: dict[str, set[int]], foreign_busy: frozenset[tuple[str, int]]
) -> tuple[snap.Node, ...]:
    """The core's view of the nodes: what pods Karimasu did not create hold is taken off
    their CPU and memory, and as many of their GPUs as they hold are marked busy (never
    offered). Read as plain rows: nodes, then their present GPUs."""
    gpus: dict[int, list[tuple[int, str, bool]]] = {}
    for node_id, index, uuid, healthy in Gpu.objects.filter(
        node__gone_at__isnull=True, present=True
    ).values_list("node_id", "index", "uuid", "healthy"):
        gpus.setdefault(node_id, []).append((index, uuid, healthy))
    nodes = []
    for (
        pk, name, model, cpu, foreign_cpu, memory, foreign_memory, cordoned, ready,
        foreign, capacity, allocatable,
    ) in Node.objects.filter(gone_at__isnull=True).values_list(*NODE_COLUMNS):  # fmt: skip
        present = gpus.get(pk, [])
        telemetry = frozenset(i for i, _, _ in present if (name, i) in foreign_busy)
        outside = outside_gpu_indices(
            Node(foreign_gpus=foreign, gpu_capacity=capacity, gpu_allocatable=allocatable),
            [i for i, _, _ in present],
            held.get(name, set()),
            telemetry,
        )
        nodes.append(
            snap.Node(
                name=name,
                gpu_model=model,
                gpus=tuple(
                    snap.Gpu(
                        index=i,
                        uuid=uuid,
                        healthy=healthy,
                        foreign_busy=i in telemetry or i in outside,
                    )
                    for i, uuid, healthy in present
                ),
                cpu_milli=max(0, cpu - foreign_cpu),
                memory_mib=max(0, memory - foreign_memory),
                cordoned=cordoned,
                ready=ready,
            )
        )
    return tuple(nodes)


def production_config() -> snap.Config:
    """Production's policy switches. Bookings are never released as no-shows by the core:
    idle bookings get a notice and are reclaimed from telemetry (`services/idle.py`)."""
    return snap.Config(packing=snap.Packing(settings.KARIMASU_PACKING), booking_no_show_s=None)


def _usage(now: datetime) -> tuple[snap.UsageRecord, ...]:
    """Finished jobs' GPU-seconds (running ones are added by the core)."""
    done = Job.objects.filter(
        finished_at__gte=now - USAGE_HORIZON, started_at__isnull=False, gpus__gt=0
    ).values_list("team__slug", _username(), "gpus", "started_at", "finished_at")
    return tuple(
        snap.UsageRecord(
            team=team,
            user=user,
            gpu_seconds=gpus * (finished - started).total_seconds(),
            at=finished.timestamp(),
        )
        for team, user, gpus, started, finished in done
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


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """The cycle allocates some 100k short-lived objects (rows, snapshot, decisions): with
    the cyclic garbage collector on, its passes over every live object cost ~1/4 of a cycle
    at 10k queued jobs. Reference counting still frees them; the collector runs again after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    with _no_gc_pauses(), transaction.atomic():
        if not _lock():
            log.info("cycle.skipped another cycle holds the lock")
            return CycleReport(skipped=True)
        if foreign_busy is None:
            foreign_busy = frozenset((g.node, g.index) for g in foreign_gpus(now=now))
        snapshot = build_snapshot(now=now, foreign_busy=foreign_busy)
        result = decide(snapshot)
        # What the transitions and the preemption messages read, not the whole rows.
        jobs = (
            Job.objects.select_related("team")
            .only(*DECIDED_COLUMNS)
            .in_bulk(
                [
                    int(x)
                    for x in {
                        *(a.job_id for a in result.admitted),
                        *(p.job_id for p in result.preempted),
                    }
                ]
            )
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
    moves = []
    for admit in result.admitted:
        job = jobs.get(int(admit.job_id))
        if job is None or job.status != states.QUEUED:
            continue
        moves.append(
            (
                job,
                {
                    "reason": "admitted",
                    "node": nodes[admit.node],
                    "gpu_indices": list(admit.gpu_indices),
                    "borrowed": admit.borrowed,
                    "admitted_at": now,
                    "queue_position": None,
                    "eta": None,
                },
            )
        )
    transition_jobs(states.ADMITTED, moves, now=now)
    report.admitted.extend(job.pk for job, _ in moves)


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
    moves = []
    for preempt in result.preempted:
        job = jobs.get(int(preempt.job_id))
        if job is None or job.status not in states.ON_CLUSTER:
            continue
        moves.append(
            (
                job,
                {
                    "reason": f"preempted_{preempt.reason}",
                    "message": _preempted_message(preempt, jobs),
                    "terminating_until": now + timedelta(seconds=preempt.grace_s),
                },
            )
        )
    transition_jobs(states.PREEMPTED, moves, now=now)
    report.preempted.extend(job.pk for job, _ in moves)


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


WAITING_FIELDS = ("reason", "message", "queue_position", "eta")
WaitingRow = tuple[str, str, int | None, datetime | None]


def _record_waiting(result: CycleResult) -> int:
    """Each waiting job's reason, message, position and ETA. Only rows that differ from
    what the last cycle wrote are written (most do not change from one cycle to the next),
    in one set-based UPDATE on PostgreSQL. Only queued rows: a job cancelled meanwhile
    keeps its own reason. Returns how many waiting jobs are still queued."""
    # ETAs are compared as seconds (exact: both sides are the stored microseconds), and
    # many jobs share one (the end of one running job): one datetime per distinct ETA.
    etas: dict[float, tuple[datetime, float]] = {}
    for w in result.waiting:
        if w.eta is not None and w.eta not in etas:
            moment = _dt(w.eta)
            etas[w.eta] = (moment, moment.timestamp())
    wanted = {
        int(w.job_id): (
            w.reason.value,
            w.detail[:1000],
            w.position,
            None if w.eta is None else etas[w.eta][1],
            w.eta,
        )
        for w in result.waiting
    }
    queued = 0
    changed: dict[int, WaitingRow] = {}
    stored_rows = (
        Job.objects.filter(status=states.QUEUED)
        .annotate(eta_s=_seconds("eta"))
        .values_list("pk", "reason", "message", "queue_position", "eta_s")
    )
    for pk, reason, message, position, eta in stored_rows:
        row = wanted.get(pk)
        if row is None:
            continue
        queued += 1
        stored = (reason, message, position, None if eta is None else _timestamp(eta))
        if stored != row[:4]:
            changed[pk] = (row[0], row[1], row[2], None if row[4] is None else etas[row[4]][0])
    _write_waiting(changed)
    return queued


def _write_waiting(rows: dict[int, WaitingRow]) -> None:
    if not rows:
        return
    if connection.vendor != "postgresql":
        Job.objects.bulk_update(
            [
                Job(pk=pk, reason=reason, message=message, queue_position=position, eta=eta)
                for pk, (reason, message, position, eta) in rows.items()
            ],
            WAITING_FIELDS,
            batch_size=500,
        )
        return
    # One JSON document for all rows: one parameter, dumped by the json module in one call
    # rather than element by element.
    document = json.dumps(
        [
            [pk, reason, message, position, eta.isoformat() if eta is not None else None]
            for pk, (reason, message, position, eta) in rows.items()
        ]
    )
    table = connection.ops.quote_name(Job._meta.db_table)
    columns = [connection.ops.quote_name(job_column(f)[1]) for f in WAITING_FIELDS]
    assignments = ", ".join(f"{c} = v.{c}" for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS j SET {assignments} FROM ("  # noqa: S608 (names from the model)
            f"SELECT (r->>0)::bigint AS id, r->>1 AS {columns[0]}, r->>2 AS {columns[1]}, "
            f"(r->>3)::integer AS {columns[2]}, (r->>4)::timestamptz AS {columns[3]} "
            "FROM jsonb_array_elements(%s::jsonb) AS r) AS v "
            "WHERE j.id = v.id AND j.status = %s",
            [document, states.QUEUED],
        )


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
