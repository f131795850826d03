"""Interactive sessions (docs/sessions.md): start one on a booking's GPUs or on demand
(queued like a job), stop it, extend it, and the beat's lifecycle pass (warnings before
the booking or the session's duration ends, the stop at its end, idle culling).

A session is a `Job` like any other, so quotas, the board, reconcile, the watcher and the
cluster backend see it as they see training: its job is admitted at once onto the
booking's node and GPUs (the booking already holds them for the holder, so there is
nothing to queue for), submitted, and moved only by `transition_job`. An on-demand
session's job goes through the normal submission path (quotas, fair share, limits,
priorities) and waits in the queue until a scheduling cycle places it. Stopping it is the
job's cancel (`cancel_job`): the cluster's Job is deleted after commit, or by reconcile
when that fails.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from portal.accounts.models import User
from portal.errors import Conflict, InvalidRequest, NotPermitted
from scheduler import messages, states
from scheduler.cluster.backend import ClusterBackend
from scheduler.models import (
    LIVE_STATUSES,
    Job,
    PriorityClass,
    Reservation,
    Session,
    WorkspaceImage,
)
from scheduler.services.access import can_manage_session
from scheduler.services.jobs import (
    WORKSPACE_PORT_ANNOTATION,
    InvalidTransition,
    job_spec,
    transition_job,
)
from scheduler.services.reservations import change_reservation
from scheduler.services.submission import JobRequest, cancel_job, submit_job, validate_mounts

log = logging.getLogger("karimasu.sessions")

#: A session's job in these is a live session: waiting for GPUs (on demand), placed or
#: running, or preempted (the lifecycle pass then stops it: its workspace is gone).
LIVE_JOB_STATUSES = frozenset({states.QUEUED, states.PREEMPTED, *states.ON_CLUSTER})
#: Minutes before the booking's end at which the owner is warned.
WARN_MINUTES = (15, 5)
_WARNED = {15: "warned_15_for", 5: "warned_5_for"}
#: The longest one "extend" asks for.
MAX_EXTEND_MINUTES = 24 * 60
#: Annotations the emulator reads: the workspace runs as a real process for as long as the
#: job may run (`kube_emulator`'s workspace pods); a real cluster ignores them.
WORKSPACE_ANNOTATION = "karimasu.io/workspace"
SIM_DURATION_ANNOTATION = "karimasu.io/sim-duration-seconds"
#: The emulator runs the pod as a real process: its stand-in workspace server.
EMULATOR_RUN_ANNOTATION = "emulator.karimasu.io/run"

IsIdle = Callable[[Session, datetime, datetime], bool]
LastActivity = Callable[[Session], datetime | None]


def state(session: Session) -> str:
    """What the session page says: ``queued`` (on demand, waiting for GPUs), ``starting``
    (admitted, pulling, starting), ``running`` or ``stopped`` (its job is over, or was lost
    and will not come back as a session)."""
    status = session.job.status
    if status == states.RUNNING:
        return "running"
    if status in (states.QUEUED, states.PREEMPTED):
        return "queued"
    if status in (states.ADMITTED, states.STARTING):
        return "starting"
    return "stopped"


def ends_at(session: Session) -> datetime | None:
    """When the session will be stopped: its booking's end; on demand, its duration after
    it started running (None while it waits)."""
    if session.reservation is not None:
        return session.reservation.end
    job = session.job
    if job.status != states.RUNNING or job.started_at is None:
        return None
    return job.started_at + timedelta(seconds=job.max_runtime_s)


def max_session_seconds() -> int:
    """The longest an on-demand session may run, extensions included."""
    return int(float(settings.KARIMASU_SESSION_MAX_HOURS) * 3600)


def _gpu_indices(reservation: Reservation) -> list[int]:
    return sorted(
        reservation.slots.filter(active=True).values_list("gpu__index", flat=True).distinct()
    )


def _check_free(reservation: Reservation, indices: list[int]) -> None:
    """The booking has no live session, and no other job runs on its GPUs."""
    if Session.objects.filter(reservation=reservation, job__status__in=states.ON_CLUSTER).exists():
        raise Conflict(
            gettext("This booking already has a session: stop it first."), code="session_exists"
        )
    for job in Job.objects.filter(node=reservation.node_id, status__in=states.ON_CLUSTER):
        if set(job.gpu_indices) & set(indices):
            raise Conflict(
                gettext("Job %(id)s runs on this booking's GPUs: cancel it or wait for it to end.")
                % {"id": job.pk},
                code="gpus_busy",
                details={"job": job.pk},
            )


def _priority_name() -> str:
    default = PriorityClass.objects.filter(is_default=True).first()
    return default.name if default is not None else "normal"


def start_session(
    actor: User,
    *,
    reservation: Reservation,
    workspace: WorkspaceImage,
    now: datetime,
    mounts: list[Any] | None = None,
) -> Session:
    """Start ``workspace`` on ``reservation``'s GPUs for its holder, until its end."""
    if reservation.holder_id != actor.pk:
        raise NotPermitted(gettext("Only the booking's holder can start a session on it."))
    if not workspace.enabled:
        raise InvalidRequest(
            gettext("Workspace image %(image)s is not offered.") % {"image": workspace.name},
            details={"image": [gettext("Disabled.")]},
        )
    if reservation.status not in LIVE_STATUSES or not reservation.start <= now < reservation.end:
        raise Conflict(gettext("A session starts only within its booking's time."), code="not_now")
    mounts = list(mounts or [])
    validate_mounts(mounts)
    # Until the booking's end (an extension moves it): the board, other people's bookings
    # and Kubernetes' deadline all see the session's GPUs free from then on.
    max_runtime = max(1, math.ceil((reservation.end - now).total_seconds()))
    with transaction.atomic():
        Reservation.objects.select_for_update().filter(pk=reservation.pk).exists()
        indices = _gpu_indices(reservation)
        if not indices:
            raise Conflict(gettext("This booking holds no GPU any more."), code="not_now")
        _check_free(reservation, indices)
        job = Job.objects.create(
            name=f"session-{workspace.name}"[:100],
            owner=actor,
            team=reservation.team,
            image=workspace.image,
            command=list(workspace.command),
            args=list(workspace.args),
            env={},
            gpus=len(indices),
            cpu_millis=workspace.cpu_millis,
            memory_mb=workspace.memory_mb,
            max_runtime_s=max_runtime,
            priority_class=_priority_name(),
            preemptible=False,  # the booking holds these GPUs for the holder
            mounts=mounts,
            annotations={
                WORKSPACE_ANNOTATION: workspace.kind,
                WORKSPACE_PORT_ANNOTATION: str(workspace.port),
                SIM_DURATION_ANNOTATION: str(max_runtime),
                EMULATOR_RUN_ANNOTATION: "workspace",
            },
            submitted_at=now,
        )
        session = Session.objects.create(
            job=job,
            owner=actor,
            workspace=workspace,
            reservation=reservation,
            port=workspace.port,
            created_at=now,
        )
        env = _workspace_env(workspace, session)
        Job.objects.filter(pk=job.pk).update(env=env)
        job.env = env
        transition_job(
            job,
            states.ADMITTED,
            now=now,
            reason="session",
            message=messages.stored(
                messages.SESSION_ON_BOOKING, session=session.pk, booking=reservation.pk
            ),
            node=reservation.node,
            gpu_indices=indices,
            admitted_at=now,
            eta=None,
        )
        transaction.on_commit(partial(_enqueue_submit, job.pk))
    log.info(
        "session.started session=%s job=%s reservation=%s user=%s",
        session.pk,
        job.pk,
        reservation.pk,
        actor.pk,
    )
    return session


def start_ondemand_session(
    actor: User,
    *,
    team: str,
    workspace: WorkspaceImage,
    gpus: int,
    now: datetime,
    gpu_models: list[str] | None = None,
    hours: float | None = None,
    mounts: list[Any] | None = None,
) -> Session:
    """Queue ``workspace`` as a job of ``team`` with ``gpus`` GPUs (of ``gpu_models``) for
    ``hours`` (default ``KARIMASU_SESSION_DEFAULT_HOURS``, at most
    ``KARIMASU_SESSION_MAX_HOURS``). It goes through the normal submission path; it is
    non-preemptible when the rules allow (a lead or admin, within the team's guarantee),
    else preemptible (the session says so: a preempted workspace loses its pod)."""
    if not workspace.enabled:
        raise InvalidRequest(
            gettext("Workspace image %(image)s is not offered.") % {"image": workspace.name},
            details={"image": [gettext("Disabled.")]},
        )
    limit = max_session_seconds()
    wanted = float(settings.KARIMASU_SESSION_DEFAULT_HOURS) if hours is None else float(hours)
    seconds = math.ceil(wanted * 3600) if math.isfinite(wanted) else 0
    if not 60 <= seconds <= limit:
        message = gettext("A session runs from 1 minute to %(max)s hours.") % {
            "max": f"{limit / 3600:g}"
        }
        raise InvalidRequest(message, details={"hours": [message]})
    mounts = list(mounts or [])
    request = JobRequest(
        name=f"session-{workspace.name}"[:100],
        image=workspace.image,
        team=team,
        max_runtime_s=seconds,
        command=list(workspace.command),
        args=list(workspace.args),
        gpus=gpus,
        gpu_models=list(gpu_models or []),
        cpu_millis=workspace.cpu_millis,
        memory_mb=workspace.memory_mb,
        preemptible=True,
        mounts=mounts,
    )
    made: list[Session] = []

    def prepare(job: Job) -> None:
        session = Session.objects.create(
            job=job,
            owner=actor,
            workspace=workspace,
            reservation=None,
            port=workspace.port,
            created_at=now,
        )
        job.env = _workspace_env(workspace, session)
        # Set by the service, after validation: users cannot set these annotations.
        job.annotations = {
            WORKSPACE_ANNOTATION: workspace.kind,
            WORKSPACE_PORT_ANNOTATION: str(workspace.port),
            SIM_DURATION_ANNOTATION: str(seconds),
            EMULATOR_RUN_ANNOTATION: "workspace",
        }
        job.message = messages.stored(
            messages.SESSION_ON_DEMAND_PREEMPTIBLE
            if job.preemptible
            else messages.SESSION_ON_DEMAND,
            session=session.pk,
        )
        Job.objects.filter(pk=job.pk).update(
            env=job.env, annotations=job.annotations, message=job.message
        )
        made.append(session)

    job = submit_job(actor, request, now=now, unpreemptible_if_allowed=True, prepare=prepare)
    session = made[0]
    log.info(
        "session.queued session=%s job=%s user=%s gpus=%s preemptible=%s",
        session.pk,
        job.pk,
        actor.pk,
        job.gpus,
        job.preemptible,
    )
    return session


def _workspace_env(workspace: WorkspaceImage, session: Session) -> dict[str, str]:
    env = {str(k): str(v) for k, v in workspace.env.items()}
    env.update(
        KARIMASU_BASE_URL=session.path,
        KARIMASU_SESSION_ID=str(session.pk),
        KARIMASU_WORKSPACE_PORT=str(workspace.port),
    )
    return env


def _enqueue_submit(job_id: int) -> None:
    from scheduler import tasks  # tasks import services

    tasks.submit_admitted.delay(job_id)


def submit_admitted(backend: ClusterBackend, job_id: int, *, now: datetime) -> bool:
    """Create the cluster's Job of an admitted job now (reconcile would, on its next
    pass). False when the job is no longer admitted (already submitted, or stopped)."""
    job = Job.objects.select_related("owner", "team", "node").filter(pk=job_id).first()
    if job is None or job.status != states.ADMITTED:
        return False
    backend.submit(job_spec(job))
    try:
        transition_job(job, states.STARTING, now=now, reason="submitted")
    except InvalidTransition:
        return False  # reconcile or a stop got there first
    return True


def stop_session(
    actor: User | None, session: Session, *, now: datetime, reason: str = "stopped"
) -> Session:
    """Stop the workspace: its job is cancelled (the pod deleted after commit). ``actor``
    None is the system (booking ended, idle). Stopping twice is not an error."""
    if actor is not None and not can_manage_session(actor, session):
        raise NotPermitted(
            gettext("Only the session's owner, its team's leads and admins can stop it.")
        )
    if session.job.status in states.TERMINAL:
        return session
    why = {
        "booking_ended": messages.SESSION_BOOKING_ENDED,
        "time_up": messages.SESSION_TIME_UP,
        "preempted": messages.SESSION_PREEMPTED,
        "idle": messages.SESSION_IDLE,
    }.get(reason, "")
    if not why:
        why = (
            messages.stored(messages.SESSION_STOPPED_BY, user=actor.get_username())
            if actor is not None
            else messages.SESSION_STOPPED_BY_SYSTEM
        )
    cancel_job(None, session.job, now=now, reason=why)
    Session.objects.filter(pk=session.pk, stop_reason="").update(stop_reason=reason)
    session.stop_reason = session.stop_reason or reason
    log.info("session.stopped session=%s reason=%s", session.pk, reason)
    return session


def extend_session(actor: User, session: Session, *, minutes: int, now: datetime) -> Session:
    """Move the booking's end ``minutes`` later, if the calendar and the team's booking
    rules allow (`change_reservation` decides and tells the team); on demand, the job's
    runtime, within ``KARIMASU_SESSION_MAX_HOURS`` and before any booking of its GPUs."""
    if not can_manage_session(actor, session):
        raise NotPermitted(
            gettext("Only the session's owner, its team's leads and admins can extend it.")
        )
    if not 1 <= minutes <= MAX_EXTEND_MINUTES:
        raise InvalidRequest(
            gettext("Extend by 1 to %(most)s minutes.") % {"most": MAX_EXTEND_MINUTES},
            details={"minutes": [gettext("Out of range.")]},
        )
    if state(session) == "stopped":
        raise Conflict(gettext("This session has stopped."), code="stopped")
    reservation = session.reservation
    if reservation is None:
        return _extend_ondemand(session, minutes=minutes, now=now)
    with transaction.atomic():
        change_reservation(
            actor, reservation, end=reservation.end + timedelta(minutes=minutes), now=now
        )
        session.reservation = reservation
        job = session.job
        job.max_runtime_s += minutes * 60
        Job.objects.filter(pk=job.pk).update(max_runtime_s=job.max_runtime_s)
        if job.status in (states.STARTING, states.RUNNING):
            transaction.on_commit(partial(_enqueue_deadline, job.pk))
    return session


def _extend_ondemand(session: Session, *, minutes: int, now: datetime) -> Session:
    with transaction.atomic():
        job = (
            Job.objects.select_for_update(of=("self",))
            .select_related("node")
            .get(pk=session.job_id)
        )
        runtime = job.max_runtime_s + minutes * 60
        limit = max_session_seconds()
        if runtime > limit:
            raise NotPermitted(
                gettext(
                    "A session runs at most %(max)s hours; it can be extended by %(left)s minutes."
                )
                % {"max": f"{limit / 3600:g}", "left": max(0, (limit - job.max_runtime_s) // 60)},
                code="over_limit",
                details={"minutes": minutes, "limit_s": limit, "max_runtime_s": job.max_runtime_s},
            )
        if job.node_id is not None:  # placed: it holds its GPUs from its start (or now)
            began = job.started_at or now
            _check_no_booking(job, job.node_id, began + timedelta(seconds=runtime), now)
        job.max_runtime_s = runtime
        Job.objects.filter(pk=job.pk).update(max_runtime_s=runtime)
        session.job = job
        if job.status in (states.STARTING, states.RUNNING):
            transaction.on_commit(partial(_enqueue_deadline, job.pk))
    return session


def _check_no_booking(job: Job, node_id: int, end: datetime, now: datetime) -> None:
    """No live booking of the job's GPUs begins before ``end``: a session on demand never
    runs into someone's booking."""
    from scheduler.models import ReservationSlot

    slot = (
        ReservationSlot.objects.filter(
            active=True,
            gpu__node_id=node_id,
            gpu__index__in=job.gpu_indices,
            reservation__status__in=LIVE_STATUSES,
            start__lt=end,
            end__gt=now,
        )
        .order_by("start")
        .first()
    )
    if slot is not None:
        raise Conflict(
            gettext("A booking of these GPUs begins at %(start)s: the session cannot run past it.")
            % {"start": timezone.localtime(slot.start).strftime("%H:%M")},
            code="booked",
            details={"reservation": slot.reservation_id},
        )


def _enqueue_deadline(job_id: int) -> None:
    from scheduler import tasks  # tasks import services

    tasks.sync_deadline.delay(job_id)


def sync_deadline(backend: ClusterBackend, job_id: int) -> bool:
    """Give the cluster's Job the deadline of the row's (extended) max runtime."""
    job = Job.objects.select_related("owner", "team", "node").filter(pk=job_id).first()
    if job is None or job.status not in states.ON_CLUSTER or job.node is None:
        return False
    spec = job_spec(job)
    return backend.set_deadline(job.pk, job.attempt, spec.max_runtime_s + spec.start_timeout_s)


@dataclass
class LifecycleReport:
    warned: list[tuple[int, int]] = field(default_factory=list)  # (session, minutes)
    stopped: list[int] = field(default_factory=list)
    culled: list[int] = field(default_factory=list)


def run_lifecycle(
    *, now: datetime, is_idle: IsIdle, last_activity: LastActivity
) -> LifecycleReport:
    """The beat's pass over live sessions: stop those whose booking is over, warn those
    whose booking ends within 15 and 5 minutes (once per end: an extension warns again),
    stop those idle (GPUs by telemetry and the workspace by its own activity) for
    ``KARIMASU_SESSION_IDLE_MINUTES``. Safe to run twice."""
    report = LifecycleReport()
    live = Session.objects.filter(job__status__in=LIVE_JOB_STATUSES).select_related(
        "job", "job__team", "reservation", "owner"
    )
    for session in live:
        try:
            _lifecycle_one(session, now, is_idle, last_activity, report)
        except Exception:  # one bad session never stalls the rest
            log.exception("session.lifecycle_failed session=%s", session.pk)
    return report


def _lifecycle_one(
    session: Session,
    now: datetime,
    is_idle: IsIdle,
    last_activity: LastActivity,
    report: LifecycleReport,
) -> None:
    job = session.job
    if job.status == states.PREEMPTED or (job.status == states.QUEUED and job.attempt > 1):
        # Preempted (or lost and requeued): its pod, and the work in it, is gone; a fresh
        # workspace starting later, unattended, would only hold GPUs until culled.
        stop_session(None, session, now=now, reason="preempted")
        report.stopped.append(session.pk)
        return
    reservation = session.reservation
    if reservation is not None and (
        reservation.status not in LIVE_STATUSES or reservation.end <= now
    ):
        stop_session(None, session, now=now, reason="booking_ended")
        report.stopped.append(session.pk)
        return
    end = ends_at(session)
    if end is None:  # on demand and not running yet: nothing ends
        return
    if end <= now:
        stop_session(None, session, now=now, reason="time_up")
        report.stopped.append(session.pk)
        return
    left = end - now
    due = [m for m in WARN_MINUTES if left <= timedelta(minutes=m)]
    if due:  # the nearest warning only; the farther ones count as given
        minutes = min(due)
        column = _WARNED[minutes]
        fresh = Session.objects.filter(pk=session.pk).exclude(**{column: end})
        if fresh.update(**{_WARNED[m]: end for m in due}):
            _notify_after_commit(session.pk, minutes)
            report.warned.append((session.pk, minutes))
    if _idle(session, now, is_idle, last_activity):
        stop_session(None, session, now=now, reason="idle")
        report.culled.append(session.pk)


def _idle(session: Session, now: datetime, is_idle: IsIdle, last_activity: LastActivity) -> bool:
    """Both signals say idle for the whole window: the GPUs (telemetry, as for bookings)
    and the workspace's own last activity. A workspace that cannot say is not idle."""
    minutes = int(settings.KARIMASU_SESSION_IDLE_MINUTES)
    if minutes <= 0 or session.job.status != states.RUNNING:
        return False
    window = timedelta(minutes=minutes)
    started = session.job.started_at or session.created_at
    if now - started < window or not is_idle(session, now - window, now):
        return False
    activity = last_activity(session)
    if activity is None:
        return False
    Session.objects.filter(pk=session.pk).update(last_activity_at=activity)
    return now - activity >= window


def _notify_after_commit(session_id: int, minutes: int) -> None:
    from scheduler import tasks  # tasks import services

    transaction.on_commit(lambda: tasks.notify_session.delay(session_id, minutes))


def session_message(session: Session, minutes: int, language: str) -> str:
    from django.utils import translation
    from django.utils.translation import gettext as _

    with translation.override(language):
        end = ends_at(session) or timezone.now()
        text = (
            _(
                "Your %(image)s session %(id)s stops in %(minutes)s minutes, at %(end)s, when "
                "its booking ends. Extend it on its page: %(page)s"
            )
            if session.reservation is not None
            else _(
                "Your %(image)s session %(id)s stops in %(minutes)s minutes, at %(end)s, when "
                "its time is up. Extend it on its page: %(page)s"
            )
        )
        return text % {
            "image": session.workspace.title or session.workspace.name,
            "id": session.pk,
            "minutes": minutes,
            "end": timezone.localtime(end).strftime("%H:%M"),
            "page": f"/sessions/{session.pk}/",
        }


def send_session_warning(session_id: int, minutes: int) -> bool:
    """Email the owner that the session stops soon. Failures are logged, not raised."""
    from django.core.mail import send_mail

    session = (
        Session.objects.select_related("owner", "workspace", "reservation", "job")
        .filter(pk=session_id)
        .first()
    )
    if session is None or not session.owner.email:
        return False
    text = session_message(session, minutes, session.owner.language)
    try:
        send_mail(f"[Karimasu] {text}", text, settings.DEFAULT_FROM_EMAIL, [session.owner.email])
    except OSError as exc:
        log.warning("session.warn_failed session=%s %s", session_id, exc)
        return False
    return True
