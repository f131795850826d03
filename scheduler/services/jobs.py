"""Job status changes (the only writer of `Job.status`) and the cluster spec of an attempt."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils.translation import gettext

from portal.errors import Conflict
from scheduler import states
from scheduler.cluster.backend import GpuDevice, JobSpec, Mount
from scheduler.models import Gpu, Job, JobEvent, NamedMount, Node

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
            gettext("Job %(id)s cannot go from %(from)s to %(to)s.")
            % {"id": job.pk, "from": job.status, "to": to},
            details={"from": job.status, "to": to},
        )
    values = {"status": to, "reason": reason, "message": message[:1000], **fields}
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, status=job.status, attempt=job.attempt).update(
            **values
        )
        if updated != 1:
            raise InvalidTransition(
                gettext("Job %(id)s changed underneath (expected %(status)s).")
                % {"id": job.pk, "status": job.status},
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
    _mirror(job, values, reason)
    return job


def _mirror(job: Job, values: dict[str, Any], reason: str) -> None:
    """Set on ``job`` what its transition wrote (``values`` holds the new ``status``), and
    log the move."""
    previous = job.status
    for key, value in values.items():
        setattr(job, key, value)
    log.info(
        "job.transition job=%s attempt=%s from=%s to=%s reason=%s",
        job.pk,
        job.attempt,
        previous,
        job.status,
        reason,
    )


def transition_jobs(to: str, moves: Sequence[tuple[Job, dict[str, Any]]], *, now: datetime) -> None:
    """`transition_job` for many jobs at once (the scheduling cycle's admissions and
    preemptions): the same checks, the same columns and JobEvents, the same InvalidTransition
    when a job changed underneath (nothing is then written). Each move is a job and its
    values: `reason`, `message` and the other columns, the same keys for every job. On
    PostgreSQL one UPDATE for all of them and one INSERT of their events; elsewhere (the
    SQLite demo) `transition_job` one by one."""
    if not moves:
        return
    if connection.vendor != "postgresql":
        with transaction.atomic():
            for job, fields in moves:
                transition_job(job, to, now=now, **fields)
        return
    rows = []
    for job, fields in moves:
        if not states.can_transition(job.status, to):
            raise InvalidTransition(
                gettext("Job %(id)s cannot go from %(from)s to %(to)s.")
                % {"id": job.pk, "from": job.status, "to": to},
                details={"from": job.status, "to": to},
            )
        message = str(fields.get("message", ""))[:1000]
        rows.append({"status": to, "reason": "", **fields, "message": message})
    with transaction.atomic():
        _update_from(to, moves, rows)
        JobEvent.objects.bulk_create(
            JobEvent(
                job=job,
                at=now,
                from_status=job.status,
                to_status=to,
                reason=row["reason"],
                message=row["message"],
                attempt=row.get("attempt", job.attempt),
            )
            for (job, _), row in zip(moves, rows, strict=True)
        )
    for (job, _), row in zip(moves, rows, strict=True):
        _mirror(job, row, row["reason"])


def job_column(name: str) -> tuple[Field[Any, Any], str]:
    """A concrete field of Job and its column, for hand-written set-based statements."""
    field = Job._meta.get_field(name)
    if not isinstance(field, Field) or field.column is None:
        raise ValueError(f"Job.{name} is not a column")
    return field, field.column


def _update_from(
    to: str, moves: Sequence[tuple[Job, dict[str, Any]]], rows: list[dict[str, Any]]
) -> None:
    """One `UPDATE ... FROM unnest(arrays)`, conditional on each job's status and attempt
    as the caller saw them, as `transition_job`'s UPDATE is."""
    quote = connection.ops.quote_name
    fields = [job_column(name) for name in rows[0]]
    arrays: list[list[Any]] = [
        [job.pk for job, _ in moves],
        [job.status for job, _ in moves],
        [job.attempt for job, _ in moves],
    ]
    casts = ["bigint[]", "text[]", "integer[]"]
    for field, _ in fields:
        values = [row[field.name] for row in rows]
        if field.is_relation:
            values = [getattr(v, "pk", v) for v in values]
        if field.get_internal_type() == "JSONField":
            arrays.append([json.dumps(v) for v in values])
            casts.append("text[]")
        else:
            arrays.append([field.get_db_prep_save(v, connection) for v in values])
            casts.append(f"{field.db_type(connection)}[]")
    names = ["id_", "status_", "attempt_", *(f"v{i}" for i in range(len(fields)))]
    assignments = ", ".join(
        f"{quote(column)} = v.v{i}" + ("::jsonb" if f.get_internal_type() == "JSONField" else "")
        for i, (f, column) in enumerate(fields)
    )
    sources = ", ".join(f"%s::{cast}" for cast in casts)
    table = quote(Job._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS j SET {assignments} "  # noqa: S608 (names from the model)
            f"FROM unnest({sources}) AS v({', '.join(names)}) "
            "WHERE j.id = v.id_ AND j.status = v.status_ AND j.attempt = v.attempt_",
            arrays,
        )
        updated = cursor.rowcount
    if updated != len(moves):
        raise InvalidTransition(
            gettext("%(changed)s of %(jobs)s jobs changed underneath.")
            % {"changed": len(moves) - updated, "jobs": len(moves)},
            details={"expected": sorted({job.status for job, _ in moves})},
        )


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
        placements=[],
        borrowed=False,
        admitted_at=None,
        started_at=None,
        preempted_for=None,
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
        gpu_allocation=job.node.gpu_allocation,
        gpu_devices=_devices(job),
        **_gang_fields(job),
        ports=_ports(job),
    )


def _devices(job: Job) -> list[GpuDevice]:
    """The GPUs the job was placed on, with their UUIDs where known (what a DRA claim names)."""
    indices = sorted(int(i) for i in job.gpu_indices or [])
    if not indices or job.node is None:
        return []
    uuids = dict(Gpu.objects.filter(node=job.node, index__in=indices).values_list("index", "uuid"))
    return [GpuDevice(index=i, uuid=uuids.get(i) or "") for i in indices]


def _gang_fields(job: Job) -> dict[str, Any]:
    """A gang's part of its spec: its nodes, rank 0's port, and the RDMA resources every
    one of its nodes advertises (``KARIMASU_RDMA_RESOURCES``: names, or prefixes ending in
    "/"), one of each per pod."""
    if job.nodes <= 1:
        return {}
    names = tuple(node for node, _ in job.pods())
    advertised = [
        dict(resources or {})
        for resources in Node.objects.filter(name__in=names).values_list(
            "extended_resources", flat=True
        )
    ]
    wanted = list(settings.KARIMASU_RDMA_RESOURCES)
    shared = set.intersection(*(set(a) for a in advertised)) if advertised else set()
    rdma = {
        name: 1
        for name in sorted(shared)
        if any(name == w or (w.endswith("/") and name.startswith(w)) for w in wanted)
    }
    return {
        "nodes": job.nodes,
        "node_names": names,
        "master_port": int(settings.KARIMASU_GANG_MASTER_PORT),
        "extended": rdma,
    }


#: A session's workspace port (set by ``services.sessions``; users cannot set
#: ``karimasu.io/`` annotations).
WORKSPACE_PORT_ANNOTATION = "karimasu.io/workspace-port"


def _ports(job: Job) -> tuple[int, ...]:
    value = str((job.annotations or {}).get(WORKSPACE_PORT_ANNOTATION, ""))
    return (int(value),) if value.isdigit() and 0 < int(value) < 65536 else ()


def _mounts(job: Job) -> list[Mount]:
    """Resolve the job's mount requests (`"datasets"` or `{"name": ..., "write": true}`)."""
    wanted = [m if isinstance(m, dict) else {"name": m} for m in job.mounts]
    named = {m.name: m for m in NamedMount.objects.filter(name__in=[w["name"] for w in wanted])}
    mounts = []
    for i, request in enumerate(wanted):
        mount = named.get(request["name"])
        if mount is None:
            continue  # validated at submit; a mount removed since then is skipped
        if request.get("system"):  # a service's sub-path mount (pipelines), its own volume
            mounts.append(
                Mount(
                    name=f"{mount.name[:50]}-sys{i}",
                    claim=mount.claim,
                    path=str(request["path"]),
                    read_only=not request.get("write"),
                    sub_path=str(request["sub_path"]),
                )
            )
            continue
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
