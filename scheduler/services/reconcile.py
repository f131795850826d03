"""Make the database and the cluster agree, whatever happened in between.

One pass lists every Job Karimasu owns (by label) and every job row that should be on the
cluster, and repairs both sides:

- admitted row, no Job         -> submit it now (the crash fell between "decided" and
                                  "created"; the deterministic name makes this idempotent)
- starting/running row, no Job -> lost: requeued as a new attempt, or failed after
                                  KARIMASU_MAX_ATTEMPTS attempts
- row and Job                  -> the row follows the Job (running, succeeded, failed,
                                  timed out; node lost or evicted counts as lost)
- Job with no live row         -> deleted (an orphan: its row was cancelled, requeued or
                                  deleted while the cluster was unreachable)

When the API server cannot be reached the pass changes nothing and says so: an outage must
not look like every job vanishing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from scheduler import messages, states
from scheduler.cluster import backend as cluster
from scheduler.cluster.backend import (
    AttemptState,
    ClusterBackend,
    ClusterRejected,
    ClusterUnavailable,
)
from scheduler.models import Job, Node
from scheduler.services import job_logs
from scheduler.services.jobs import (
    InvalidTransition,
    job_spec,
    request_cycle,
    requeue,
    transition_job,
)

log = logging.getLogger("karimasu.reconcile")


@dataclass
class ReconcileReport:
    unavailable: bool = False
    submitted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.submitted or self.updated or self.lost or self.orphans_deleted)


def reconcile(backend: ClusterBackend, *, now: datetime) -> ReconcileReport:
    report = ReconcileReport()
    try:
        for name in backend.repair_claims():  # a crash between a DRA Job and its claim
            log.warning("reconcile.claim_recreated %s", name)
        owned = {(s.job_id, s.attempt): s for s in backend.list_owned()}
        live = list(
            Job.objects.filter(status__in=states.ON_CLUSTER).select_related("owner", "team", "node")
        )
        for job in live:
            state = owned.pop((job.pk, job.attempt), None)
            try:
                _repair_row(backend, job, state, now, report)
            except InvalidTransition:
                log.info("reconcile.raced job=%s: changed by another worker", job.pk)
            except ClusterRejected as exc:  # this job's problem, not the pass's
                _rejected(job, exc, now, report)
            except ClusterUnavailable:
                raise
            except Exception:  # one bad row never stalls the rest
                log.exception("reconcile.row_failed job=%s", job.pk)
        _delete_orphans(backend, owned, report, now)
        freed = Job.objects.filter(pk__in=report.updated, status__in=states.TERMINAL)
        if report.lost or freed.exists():
            request_cycle()  # GPUs came free: the queue may move
    except ClusterUnavailable as exc:
        log.warning("reconcile.unavailable %s: keeping state", exc)
        report.unavailable = True
    return report


def _repair_row(
    backend: ClusterBackend,
    job: Job,
    state: AttemptState | None,
    now: datetime,
    report: ReconcileReport,
) -> None:
    if state is None:
        if job.status == states.ADMITTED:
            backend.submit(job_spec(job))
            transition_job(job, states.STARTING, now=now, reason="submitted")
            report.submitted.append(job.pk)
        else:
            _lose(job, now, "missing", "Its Kubernetes Job disappeared.", report)
        return
    if job.status == states.ADMITTED and job.nodes > 1:
        backend.submit(job_spec(job))  # its Service too, if a crash came before it
    if apply_attempt_state(job, state, now=now):
        report.updated.append(job.pk)
        if job.status in states.TERMINAL:
            job_logs.archive_log(backend, job, state.attempt)
    if job.status == states.STARTING and state.phase == cluster.PENDING:
        _check_start(backend, job, state, now, report)
    if job.status == states.RUNNING:
        _check_runtime(backend, job, state, now, report)
    if job.status == states.LOST:
        report.lost.append(job.pk)
        backend.cancel(job.pk, state.attempt)
        _requeue_or_fail(job, now)


def apply_attempt_state(job: Job, state: AttemptState, *, now: datetime) -> bool:
    """Bring the row in line with what the cluster says. True when the row changed."""
    before = (job.status, job.reason, job.message)
    if list(state.pod_uids) != list(job.pod_uids or []) and job.attempt == state.attempt:
        Job.objects.filter(pk=job.pk).update(pod_uids=list(state.pod_uids))
        job.pod_uids = list(state.pod_uids)
    _follow_ranks(job, state)
    if job.status == states.ADMITTED:
        transition_job(
            job, states.STARTING, now=now, reason=state.reason or "submitted", message=state.message
        )
    if state.phase == cluster.PENDING:
        _pending(job, state, now)
    elif state.phase == cluster.RUNNING:
        if job.status == states.STARTING:
            transition_job(job, states.RUNNING, now=now, started_at=state.started_at or now)
        looping = "crash_loop" in (state.reason, job.reason)  # shown while it lasts
        if looping and (job.reason, job.message) != (state.reason, state.message[:1000]):
            Job.objects.filter(pk=job.pk).update(reason=state.reason, message=state.message[:1000])
            job.reason, job.message = state.reason, state.message[:1000]
    elif state.phase == cluster.SUCCEEDED:
        _finish(job, states.SUCCEEDED, state, now)
    elif state.phase == cluster.TIMED_OUT:
        _finish(job, states.TIMED_OUT, state, now)
    elif state.phase == cluster.FAILED:
        if state.reason in ("node_lost", "evicted"):
            transition_job(job, states.LOST, now=now, reason=state.reason, message=state.message)
        else:
            _finish(job, states.FAILED, state, now)
    return (job.status, job.reason, job.message) != before


def _pending(job: Job, state: AttemptState, now: datetime) -> None:
    """Not running (yet): the row shows why. A gang that ran whole and now misses a rank's
    pod is broken: lost, requeued as a whole (its Job is deleted by ``_repair_row``)."""
    if state.reason == "gang_incomplete" and job.status == states.RUNNING:
        transition_job(job, states.LOST, now=now, reason="gang_broken", message=state.message)
    elif (job.reason, job.message) != (state.reason, state.message[:1000]):
        Job.objects.filter(pk=job.pk).update(reason=state.reason, message=state.message[:1000])
        job.reason, job.message = state.reason, state.message[:1000]


def _follow_ranks(job: Job, state: AttemptState) -> None:
    """A gang's pods land on its nodes in the cluster's order: once every rank is bound,
    ``Job.placements`` is reordered to match (rank i on the node that runs rank i, with that
    node's GPUs), and rank 0 becomes ``node``/``gpu_indices``. Never changes which nodes
    or GPUs the gang holds."""
    if job.nodes <= 1 or len(state.pods) != job.nodes or not job.placements:
        return
    by_node = {p["node"]: p for p in job.placements}
    order = [node for _, node in state.pods]
    if sorted(order) != sorted(by_node) or order == [p["node"] for p in job.placements]:
        return
    placements = [by_node[node] for node in order]
    rank0 = Node.objects.filter(name=order[0]).first()
    Job.objects.filter(pk=job.pk, attempt=job.attempt).update(
        placements=placements, node=rank0, gpu_indices=placements[0]["gpu_indices"]
    )
    job.placements, job.node, job.gpu_indices = placements, rank0, placements[0]["gpu_indices"]


def _check_start(
    backend: ClusterBackend, job: Job, state: AttemptState, now: datetime, report: ReconcileReport
) -> None:
    """A job that cannot start must not hold its GPUs until its runtime deadline (like
    Kueue's waitForPodsReady): an invalid image fails at once; anything else still pending
    ``KARIMASU_START_TIMEOUT_SECONDS`` after admission is stopped and requeued as a new
    attempt (failed after ``KARIMASU_MAX_ATTEMPTS``), with the reason it gave."""
    if state.reason == "invalid_image":
        backend.cancel(job.pk, state.attempt)
        transition_job(
            job,
            states.FAILED,
            now=now,
            reason="invalid_image",
            message=state.message,
            finished_at=now,
        )
        report.updated.append(job.pk)
        return
    timeout = float(settings.KARIMASU_START_TIMEOUT_SECONDS)
    since = job.admitted_at or job.submitted_at
    if since is None or (now - since).total_seconds() < timeout:
        return
    backend.cancel(job.pk, state.attempt)
    why = f"{state.reason}: {state.message}" if state.message else state.reason
    _lose(job, now, "start_timeout", f"It did not start within {timeout:g} s ({why}).", report)


def _check_runtime(
    backend: ClusterBackend, job: Job, state: AttemptState, now: datetime, report: ReconcileReport
) -> None:
    """The max runtime counts from the container's start (``job.started_at``), not from the
    Job's creation: a running job past it is stopped here (log archived first) and ends
    ``timed_out``. The Job's ``activeDeadlineSeconds`` (max runtime + start timeout) is the
    cluster's backstop for when Karimasu cannot act."""
    if job.started_at is None or (now - job.started_at).total_seconds() < job.max_runtime_s:
        return
    job_logs.archive_log(backend, job, state.attempt)
    backend.cancel(job.pk, state.attempt)
    transition_job(
        job,
        states.TIMED_OUT,
        now=now,
        reason="deadline_exceeded",
        message=messages.stored(messages.RUNTIME_EXCEEDED, seconds=job.max_runtime_s),
        finished_at=job.started_at + timedelta(seconds=job.max_runtime_s),
    )
    report.updated.append(job.pk)
    log.info("reconcile.runtime_exceeded job=%s attempt=%s", job.pk, state.attempt)


def fail_rejected(job: Job, exc: ClusterRejected, now: datetime) -> bool:
    """The API server refused this job's Kubernetes Job (a 4xx): fail it with the server's
    message instead of retrying forever. True when the row changed."""
    if job.status != states.ADMITTED:
        return False
    try:
        transition_job(
            job,
            states.FAILED,
            now=now,
            reason="rejected_by_cluster",
            message=messages.stored(messages.REJECTED_BY_CLUSTER, why=exc)[:1000],
            finished_at=now,
        )
    except InvalidTransition:
        return False
    log.warning("job.rejected_by_cluster job=%s %s", job.pk, exc)
    return True


def _rejected(job: Job, exc: ClusterRejected, now: datetime, report: ReconcileReport) -> None:
    if fail_rejected(job, exc, now):
        report.updated.append(job.pk)
    else:
        log.warning("reconcile.rejected job=%s %s", job.pk, exc)


def _finish(job: Job, to: str, state: AttemptState, now: datetime) -> None:
    transition_job(
        job,
        to,
        now=now,
        reason=state.reason,
        message=state.message,
        exit_code=state.exit_code,
        finished_at=state.finished_at or now,
        started_at=job.started_at or state.started_at,
    )


def _lose(job: Job, now: datetime, reason: str, message: str, report: ReconcileReport) -> None:
    transition_job(job, states.LOST, now=now, reason=reason, message=message)
    report.lost.append(job.pk)
    _requeue_or_fail(job, now)


def _requeue_or_fail(job: Job, now: datetime) -> None:
    if job.attempt < settings.KARIMASU_MAX_ATTEMPTS:
        requeue(
            job,
            now=now,
            reason=f"requeued_after_{job.reason}",
            message=messages.stored(messages.ATTEMPT_LOST, attempt=job.attempt, reason=job.reason),
        )
    else:
        transition_job(
            job,
            states.FAILED,
            now=now,
            reason=f"{job.reason}_too_often",
            message=messages.stored(messages.LOST_TOO_OFTEN, attempts=job.attempt),
            finished_at=now,
        )


def _delete_orphans(
    backend: ClusterBackend,
    owned: dict[tuple[int, int], AttemptState],
    report: ReconcileReport,
    now: datetime,
) -> None:
    """Delete Jobs whose row no longer wants them. Finished Jobs of finished rows are left
    for their TTL (their logs stay readable until then)."""
    if not owned:
        return
    rows = {j.pk: j for j in Job.objects.filter(pk__in={job_id for job_id, _ in owned})}
    for (job_id, attempt), state in owned.items():
        row = rows.get(job_id)
        finished = state.phase in (cluster.SUCCEEDED, cluster.FAILED, cluster.TIMED_OUT)
        if (
            row is not None
            and row.attempt == attempt
            and finished
            and row.status in states.TERMINAL
        ):
            continue
        if (
            row is not None
            and row.attempt == attempt
            and row.status == states.PREEMPTED
            and row.terminating_until is not None
            and row.terminating_until > now
        ):
            continue  # stopping within its grace period, as the cycle asked
        try:
            deleted = backend.cancel(job_id, attempt)
        except ClusterRejected as exc:  # one refused delete never stops the others
            log.warning(
                "reconcile.orphan_delete_refused job=%s attempt=%s %s", job_id, attempt, exc
            )
            continue
        if deleted:
            report.orphans_deleted.append(f"{job_id}/a{attempt}")
            log.warning(
                "reconcile.orphan_deleted job=%s attempt=%s row_status=%s",
                job_id,
                attempt,
                row.status if row else None,
            )
