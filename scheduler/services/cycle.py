"""One scheduling cycle: load a snapshot from the database (`services.snapshot`), ask the
pure core, apply.

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

from django.db import connection, transaction

from scheduler import messages, states
from scheduler.cluster.backend import ClusterBackend, ClusterError, ClusterRejected
from scheduler.core.cycle import plan_cycle as decide
from scheduler.core.decisions import Admit, CycleResult, Preempt, ahead_counts
from scheduler.models import (
    Job,
    Node,
    QueueOrder,
    Reservation,
    ReservationStatus,
)
from scheduler.services.jobs import (
    InvalidTransition,
    job_column,
    job_spec,
    requeue,
    transition_job,
    transition_jobs,
)
from scheduler.services.reservations import end_reservation
from scheduler.services.snapshot import (
    QUEUE_ROWS,
    StoredWaiting,
    from_timestamp,
    load_snapshot,
    row_version,
)
from scheduler.telemetry.detectors import foreign_gpus

log = logging.getLogger("karimasu.cycle")

LOCK_KEY = 0x4B41524D  # "KARM": the advisory lock id of the scheduling cycle
DECIDED_COLUMNS = ("pk", "status", "attempt", "gpus", "nodes", "team__slug")


@dataclass
class CycleReport:
    skipped: bool = False
    admitted: list[int] = field(default_factory=list)
    preempted: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    waiting: int = 0  # the queued jobs the cycle left waiting (with a reason, a position)


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
        snapshot, stored = load_snapshot(now=now, foreign_busy=foreign_busy)
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
                        # Their preemptors: named in the message, kept in preempted_for.
                        *(p.by_job for p in result.preempted if str(p.by_job).isdigit()),
                    }
                ]
            )
        )
        _requeue_finished_grace(now, report)
        _apply_admissions(result, jobs, now, report)
        _apply_preemptions(result, jobs, now, report)
        _apply_releases(result, now)
        _record_waiting(result, stored, now)
        report.waiting = len(result.rows)
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
        requeue(job, now=now, reason="preempted", message=messages.REQUEUED_AFTER_PREEMPTION)
        report.requeued.append(job.pk)


def _apply_admissions(
    result: CycleResult, jobs: dict[int, Job], now: datetime, report: CycleReport
) -> None:
    nodes = {n.name: n for n in Node.objects.filter(name__in={a.node for a in result.admitted})}
    # A gang's every pod is written here, in the cycle's one transaction, with its admission.
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
                    "placements": gang_placements(admit),
                    "borrowed": admit.borrowed,
                    "admitted_at": now,
                    "eta": None,
                },
            )
        )
    transition_jobs(states.ADMITTED, moves, now=now)
    report.admitted.extend(job.pk for job, _ in moves)


def gang_placements(admit: Admit) -> list[dict[str, object]]:
    """``Job.placements`` of an admission: every rank's node and GPUs for a gang (rank 0
    first), empty for a single-node job (its ``node``/``gpu_indices`` say it all)."""
    if not admit.placements:
        return []
    return [{"node": node, "gpu_indices": list(indices)} for node, indices in admit.placements]


def _preempted_message(preempt: Preempt, jobs: dict[int, Job]) -> str:
    """Why a job was stopped, in words its owner can act on: whose work took the GPUs (the
    team, not a job page the owner may not see) and for what reason."""
    by = _preemptor(preempt, jobs)
    who = (
        messages.stored(messages.PREEMPTED_BY_JOB, gpus=by.gpus * by.nodes, team=by.team.slug)
        if by is not None
        else messages.PREEMPTED_BY_OTHER
    )
    why = {
        "reclaim": messages.PREEMPTED_RECLAIM,
        "priority": messages.PREEMPTED_PRIORITY,
    }.get(str(preempt.reason), str(preempt.reason))
    return messages.stored(messages.PREEMPTED, who=who, why=why)


def _preemptor(preempt: Preempt, jobs: dict[int, Job]) -> Job | None:
    return jobs.get(int(preempt.by_job)) if str(preempt.by_job).isdigit() else None


def _apply_preemptions(
    result: CycleResult, jobs: dict[int, Job], now: datetime, report: CycleReport
) -> None:
    moves = []
    for preempt in result.preempted:
        job = jobs.get(int(preempt.job_id))
        if job is None or job.status not in states.ON_CLUSTER:
            continue
        if job.status == states.ADMITTED:
            # Admitted by an earlier cycle, not yet on the cluster (its submission was
            # deferred): no pod to stop, and admitted -> preempted is no edge. Back to the
            # queue as a new attempt (a Kubernetes Job of this attempt that reached the
            # cluster after all is an orphan: reconcile deletes it); its GPUs free at once.
            requeue(
                job,
                now=now,
                reason=f"preempted_{preempt.reason}",
                message=_preempted_message(preempt, jobs),
            )
            report.requeued.append(job.pk)
            continue
        moves.append(
            (
                job,
                {
                    "reason": f"preempted_{preempt.reason}",
                    "message": _preempted_message(preempt, jobs),
                    "terminating_until": now + timedelta(seconds=preempt.grace_s),
                    # Whom its GPUs are freed for: the next cycles keep them for that job.
                    "preempted_for": _preemptor(preempt, jobs),
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


WAITING_FIELDS = ("reason", "message", "eta")
WaitingRow = tuple[str, str, datetime | None]


def _record_waiting(result: CycleResult, stored: StoredWaiting, now: datetime) -> int:
    """The line of waiting jobs (``QueueOrder``: positions and how many wait ahead, one row)
    and each waiting job's reason, message and ETA. Only job rows that differ from what the
    snapshot read on them (``stored``: what the last cycle wrote) are written (most do not
    change from one cycle to the next; a job that only moves in line changes none), in one
    set-based UPDATE on PostgreSQL. Only queued rows: a job cancelled meanwhile keeps its
    own reason. Returns how many job rows differed (each written, unless it changed
    meanwhile).

    Comparing with the snapshot's read rather than reading the 10k rows again saves that
    read. A row changed between the two (a new row version) is not written (see
    ``_write_waiting``): the next cycle reads it whole and writes what it decides then."""
    # ETAs are compared as seconds (exact: both sides are the stored microseconds), and
    # many jobs share one (the end of one running job): one datetime per distinct ETA.
    etas: dict[float, tuple[datetime, float]] = {}
    changed: dict[int, WaitingRow] = {}
    values: StoredWaiting = {}  # the same rows as ``stored`` holds them
    ids: list[int] = []
    for job_id, reason, detail, eta, _ in result.rows:  # not ``waiting``: no objects
        pk = int(job_id)
        ids.append(pk)
        if eta is None:
            moment = exact = None
        else:
            known = etas.get(eta)
            if known is None:
                moment = from_timestamp(eta)
                known = etas[eta] = (moment, moment.timestamp())
            moment, exact = known
        # ``_value_``, not ``value``: the enum's property costs a Python call per row.
        row = (reason._value_, detail[:1000], exact)
        if stored.get(pk) != row:
            changed[pk] = (row[0], row[1], moment)
            values[pk] = row
    QueueOrder.record(now, ids, ahead_counts(result.rows))
    versions = _write_waiting(changed)
    if versions:
        QUEUE_ROWS.rewritten(versions, values)
    return len(changed)


def _write_waiting(rows: dict[int, WaitingRow]) -> dict[int, str]:
    """Write ``rows`` to the jobs still queued; on PostgreSQL returns the new row version
    of each (see ``QueueRows``)."""
    if not rows:
        return {}
    if connection.vendor != "postgresql":
        # Only rows still queued, as the UPDATE below (a cancelled job keeps its reason).
        ids, queued = list(rows), set[int]()
        for i in range(0, len(ids), 500):  # SQLite bounds the parameters of one statement
            queued.update(
                Job.objects.filter(pk__in=ids[i : i + 500], status=states.QUEUED).values_list(
                    "pk", flat=True
                )
            )
        Job.objects.bulk_update(
            [
                Job(pk=pk, reason=reason, message=message, eta=eta)
                for pk, (reason, message, eta) in rows.items()
                if pk in queued
            ],
            WAITING_FIELDS,
            batch_size=500,
        )
        return {}
    # One JSON document for all rows: one parameter, dumped by the json module in one call
    # rather than element by element.
    # With each row the version the snapshot read it at: a row changed since (by another
    # transaction, or this one) is left as it is, and read whole by the next cycle; so
    # the versions returned are those of rows the snapshot read, with these fields.
    kept = QUEUE_ROWS.kept
    document = json.dumps(
        [
            [
                pk, reason, message, eta.isoformat() if eta is not None else None,
                kept[pk][0] if pk in kept else None,
            ]
            for pk, (reason, message, eta) in rows.items()
        ]
    )  # fmt: skip
    table = connection.ops.quote_name(Job._meta.db_table)
    columns = [connection.ops.quote_name(job_column(f)[1]) for f in WAITING_FIELDS]
    assignments = ", ".join(f"{c} = v.{c}" for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS j SET {assignments} FROM ("  # noqa: S608 (names from the model)
            f"SELECT (r->>0)::bigint AS id, r->>1 AS {columns[0]}, r->>2 AS {columns[1]}, "
            f"(r->>3)::timestamptz AS {columns[2]}, "
            "r->>4 AS version FROM jsonb_array_elements(%s::jsonb) AS r) AS v "
            "WHERE j.id = v.id AND j.status = %s "
            f"AND (v.version IS NULL OR {row_version('j')} = v.version) "
            f"RETURNING j.id, {row_version('j')}",
            [document, states.QUEUED],
        )
        return dict(cursor.fetchall())


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
