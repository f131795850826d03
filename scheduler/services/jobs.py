"""Job status changes (the only writer of `Job.status`) and the cluster spec of an attempt."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from portal.errors import Conflict
from scheduler import states
from scheduler.cluster.backend import JobSpec, Mount
from scheduler.models import Job, JobEvent, NamedMount

log = logging.getLogger("karimasu.scheduler")


class InvalidTransition(Conflict):
    code = "invalid_transition"


def transition_job(
    job: Job, to: str, *, now: datetime, reason: str = "", message: str = "", **fields: Any
) -> Job:
    """Move `job` to status `to` along an allowed edge, recording a JobEvent.

    The update is conditional on the status the caller saw (`job.status`), so two workers
    racing on one job cannot both apply a change: the loser gets InvalidTransition and
    should re-read. `fields` are other columns written in the same UPDATE.
    """
    if not states.can_transition(job.status, to):
        raise InvalidTransition(
            f"Job {job.pk} cannot go from {job.status} to {to}.",
            details={"from": job.status, "to": to},
        )
    values = {"status": to, "reason": reason, "message": message[:1000], **fields}
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, status=job.status, attempt=job.attempt).update(
            **values
        )
        if updated != 1:
            raise InvalidTransition(
                f"Job {job.pk} changed underneath (expected {job.status}).",
                details={"expected": job.status},
            )
        JobEvent.objects.create(
            job=job,
            at=now,
            from_status=job.status,
            to_status=to,
            reason=reason,
            message=message[:1000],
            attempt=fields.get("attempt", job.attempt),
        )
    previous = job.status
    for key, value in values.items():
        setattr(job, key, value)
    log.info(
        "job.transition job=%s attempt=%s from=%s to=%s reason=%s",
        job.pk,
        job.attempt,
        previous,
        to,
        reason,
    )
    return job


def requeue(job: Job, *, now: datetime, reason: str, message: str = "") -> Job:
    """A preempted or lost job goes back to the queue as a new attempt."""
    return transition_job(
        job,
        states.QUEUED,
        now=now,
        reason=reason,
        message=message,
        attempt=job.attempt + 1,
        node=None,
        gpu_indices=[],
        borrowed=False,
        admitted_at=None,
        started_at=None,
    )


def job_spec(job: Job) -> JobSpec:
    """The cluster's view of the job's current attempt on its admitted node."""
    if job.node is None:
        raise ValueError(f"job {job.pk} has no node: only admitted jobs have a spec")
    return JobSpec(
        job_id=job.pk,
        attempt=job.attempt,
        name=job.name,
        image=job.image,
        command=list(job.command),
        args=list(job.args),
        env={str(k): str(v) for k, v in job.env.items()},
        gpus=job.gpus,
        cpu_millis=job.cpu_millis,
        memory_mb=job.memory_mb,
        node_name=job.node.name,
        max_runtime_s=job.max_runtime_s,
        user=job.owner.get_username(),
        team=job.team.slug,
        mounts=_mounts(job),
        annotations={str(k): str(v) for k, v in job.annotations.items()},
        image_pull_secrets=list(settings.KARIMASU_IMAGE_PULL_SECRETS),
        priority_class_name=settings.KARIMASU_POD_PRIORITY_CLASS,
        scratch_gb=settings.KARIMASU_JOB_SCRATCH_GB,
        secret_env={
            str(k): (str(v["secret"]), str(v["key"])) for k, v in (job.secret_env or {}).items()
        },
        start_timeout_s=math.ceil(float(settings.KARIMASU_START_TIMEOUT_SECONDS)),
    )


def _mounts(job: Job) -> list[Mount]:
    """Resolve the job's mount requests (`"datasets"` or `{"name": ..., "write": true}`)."""
    wanted = [m if isinstance(m, dict) else {"name": m} for m in job.mounts]
    named = {m.name: m for m in NamedMount.objects.filter(name__in=[w["name"] for w in wanted])}
    mounts = []
    for request in wanted:
        mount = named.get(request["name"])
        if mount is None:
            continue  # validated at submit; a mount removed since then is skipped
        write = bool(request.get("write")) and mount.allow_write
        mounts.append(
            Mount(
                name=mount.name,
                claim=mount.claim,
                path=mount.path,
                read_only=mount.read_only and not write,
            )
        )
    return mounts


def request_cycle() -> None:
    """Ask for a scheduling cycle once the current transaction commits (at once outside
    one): after a submit, a cancel, a finish, or a booking change."""
    from scheduler import tasks  # tasks import services

    transaction.on_commit(lambda: tasks.schedule_cycle.delay())
