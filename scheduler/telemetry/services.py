"""Telemetry's write path: node tokens, ingesting a batch, retention.

`ingest_batch` runs in one transaction and does a fixed number of queries per batch whatever
its size: bulk insert of raw samples, merge of the touched one-minute rollups and job
summaries (read, add in Python, bulk create/update), upsert of the latest state per GPU, and
the GPU's UUID and health on `Gpu` (the only `scheduler` columns this app writes).

Which job a sample belongs to: the job of a process on the GPU, named by the agent (from the
pod's labels) or found by the process's pod UID (its cgroup) among the pods reconcile saw
for the node's jobs (`Job.pod_uids`), else the job the portal placed on that GPU
(`Job.node` and `gpu_indices`, or any rank's of a gang's `placements`, while
admitted/starting/running) unless that job's processes were seen on other GPUs of the node
in the same reading (the device plugin gave its pod other GPUs than Karimasu's indices: the
GPU at the index is not the job's). A process is foreign when the agent says so, or when the
agent could not tell and no job holds the GPU.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from portal.accounts.services import token_digest
from scheduler import states
from scheduler.models import Gpu, Job, Node
from scheduler.models.jobs import gpus_by_node, on_nodes
from scheduler.telemetry.models import (
    GpuMinute,
    GpuSample,
    GpuState,
    JobUtilization,
    NodeAgentState,
    NodeToken,
)

log = logging.getLogger("karimasu.telemetry")

NODE_TOKEN_PREFIX = "kmn_"  # noqa: S105 (a public prefix, not a secret)


def setting(name: str, default: Any) -> Any:
    """Telemetry settings with their defaults (see docs/telemetry.md)."""
    return getattr(settings, name, default)


def idle_percent() -> float:
    return float(setting("KARIMASU_IDLE_THRESHOLD_PERCENT", 5.0))


# --- node tokens -------------------------------------------------------------------------


def create_node_token(node: Node, *, now: datetime) -> tuple[NodeToken, str]:
    """A new token for `node`'s agent; the plaintext is returned once and never stored."""
    plaintext = NODE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = NodeToken.objects.create(
        node=node,
        prefix=plaintext[: len(NODE_TOKEN_PREFIX) + 6],
        digest=token_digest(plaintext),
        created_at=now,
    )
    log.info("node token created node=%s prefix=%s", node.name, token.prefix)
    return token, plaintext


def authenticate_node_token(plaintext: str, *, now: datetime) -> NodeToken | None:
    if not plaintext.startswith(NODE_TOKEN_PREFIX) or len(plaintext) > 128:
        return None
    try:
        token = NodeToken.objects.select_related("node").get(
            digest=token_digest(plaintext), revoked_at__isnull=True
        )
    except NodeToken.DoesNotExist:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        NodeToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def revoke_node_tokens(node: Node, *, now: datetime, keep: NodeToken | None = None) -> int:
    """Revoke the node's live tokens (but `keep`); returns how many."""
    live = NodeToken.objects.filter(node=node, revoked_at__isnull=True)
    if keep is not None:
        live = live.exclude(pk=keep.pk)
    return live.update(revoked_at=now)


# --- ingest ------------------------------------------------------------------------------


@dataclass
class IngestResult:
    readings: int = 0
    samples: int = 0
    unknown_gpus: list[int] = field(default_factory=list)


@dataclass
class _Acc:
    """Sums for one rollup minute or one job summary."""

    samples: int = 0
    util_n: int = 0
    util_sum: float = 0.0
    util_max: float | None = None
    mem_n: int = 0
    mem_sum: float = 0.0
    mem_max: float | None = None
    idle: int = 0
    unhealthy: int = 0
    foreign: int = 0
    job_id: int | None = None
    histogram: list[int] = field(default_factory=lambda: [0] * 101)
    first_at: datetime | None = None
    last_at: datetime | None = None

    def add(self, sample: GpuSample, idle_below: float) -> None:
        self.samples += 1
        util = sample.utilization
        if util is not None:
            self.util_n += 1
            self.util_sum += util
            self.util_max = util if self.util_max is None else max(self.util_max, util)
            self.idle += util < idle_below
            self.histogram[min(100, max(0, int(util)))] += 1
        if sample.memory_used_mib is not None:
            self.mem_n += 1
            self.mem_sum += sample.memory_used_mib
            used = sample.memory_used_mib
            self.mem_max = used if self.mem_max is None else max(self.mem_max, used)
        self.unhealthy += not sample.healthy
        self.foreign += sample.foreign_processes > 0
        self.job_id = sample.job_id if sample.job_id is not None else self.job_id
        self.first_at = sample.at if self.first_at is None else min(self.first_at, sample.at)
        self.last_at = sample.at if self.last_at is None else max(self.last_at, sample.at)


def _allocations(node: Node) -> tuple[dict[int, int], dict[str, int]]:
    """(GPU index -> id of the job the portal placed there, pod UID -> id of its job)."""
    held: dict[int, int] = {}
    pods: dict[str, int] = {}
    jobs = Job.objects.filter(on_nodes([node.pk]), status__in=states.ON_CLUSTER)
    for job_id, name, indices, placed, uids in jobs.values_list(
        "pk", "node__name", "gpu_indices", "placements", "pod_uids"
    ):
        for index in gpus_by_node(name, indices, placed).get(node.name, ()):  # a gang's rank
            held[int(index)] = job_id
        for uid in uids or []:
            pods[str(uid)] = job_id
    return held, pods


def _job_of(proc: dict[str, Any], known: set[int], pods: dict[str, int]) -> int | None:
    """The job a GPU process belongs to: named by the agent, else by its pod's UID."""
    if proc.get("job_id") in known:
        return int(proc["job_id"])
    if proc.get("job_id") is None and proc.get("foreign") is not True:
        return pods.get(str(proc.get("pod_uid") or ""))
    return None


def _known_jobs(readings: list[dict[str, Any]], placed: set[int]) -> set[int]:
    """Job ids the agent named that exist (no query when the portal placed them all)."""
    named = {
        proc["job_id"]
        for reading in readings
        for gpu in reading.get("gpus") or []
        for proc in gpu.get("processes") or []
        if proc.get("job_id") is not None
    }
    if named <= placed:
        return named
    return set(Job.objects.filter(pk__in=named).values_list("pk", flat=True))


def _unseen(job_id: int | None, seen: set[int]) -> int | None:
    """The job placed on a GPU without a named process, unless its processes were seen on
    other GPUs of the node in the same reading (then this GPU is not really its)."""
    return None if job_id in seen else job_id


def _sample(gpu: Gpu, at: datetime, data: dict[str, Any], job_id: int | None) -> GpuSample:
    processes = data.get("processes")
    foreign = 0
    for proc in processes or []:
        if proc.get("foreign") is True or (proc.get("foreign") is None and job_id is None):
            foreign += 1
    return GpuSample(
        gpu=gpu,
        at=at,
        job_id=job_id,
        healthy=bool(data.get("healthy", True)),
        utilization=data.get("utilization_gpu_pct"),
        memory_utilization=data.get("utilization_memory_pct"),
        memory_used_mib=data.get("memory_used_mib"),
        memory_total_mib=data.get("memory_total_mib"),
        temperature_c=data.get("temperature_c"),
        power_w=data.get("power_draw_w"),
        power_limit_w=data.get("power_limit_w"),
        ecc_uncorrected=data.get("ecc_uncorrected"),
        throttle_reasons=data.get("throttle_reasons"),
        processes=processes,
        foreign_processes=min(foreign, 32767),
    )


@transaction.atomic
def ingest_batch(node: Node, batch: dict[str, Any], *, now: datetime) -> IngestResult:
    """Store a parsed batch (see `batch.parse_batch`) from `node`'s agent."""
    readings = sorted(batch["readings"], key=lambda r: r["at"])
    gpus = {g.index: g for g in Gpu.objects.filter(node=node)}
    held, pods = _allocations(node)
    known = _known_jobs(readings, set(held.values()))
    idle_below = idle_percent()
    interval = float(batch.get("interval_s", 10))
    result = IngestResult(readings=len(readings))
    samples: list[GpuSample] = []
    latest: dict[int, tuple[GpuSample, dict[str, Any]]] = {}
    unknown: set[int] = set()
    for reading in readings:
        at = reading["at"]
        if not reading.get("healthy", True) and not reading.get("gpus"):
            # The driver failed: every GPU of the node reads unhealthy at this instant.
            error = str(reading.get("error") or "driver failure")
            for gpu in gpus.values():
                sample = _sample(
                    gpu, at, {"healthy": False, "processes": None}, held.get(gpu.index)
                )
                samples.append(sample)
                latest[gpu.pk] = (sample, {"error": error})
            continue
        # Jobs whose processes the agent saw in this reading, on whatever GPU: where the
        # device plugin gave a pod another GPU than Karimasu's index, the GPU at the index
        # is not the job's (its idle readings must not count against the job).
        seen = {
            job
            for data in reading.get("gpus") or []
            for p in data.get("processes") or []
            if (job := _job_of(p, known, pods)) is not None
        }
        for data in reading.get("gpus") or []:
            row = gpus.get(data["index"])
            if row is None:
                unknown.add(data["index"])
                continue
            named = [
                job
                for p in data.get("processes") or []
                if (job := _job_of(p, known, pods)) is not None
            ]
            placed = held.get(row.index)
            sample = _sample(row, at, data, named[0] if named else _unseen(placed, seen))
            samples.append(sample)
            latest[row.pk] = (sample, data)
    GpuSample.objects.bulk_create(samples, batch_size=2000)
    _merge_minutes(samples, idle_below)
    _merge_jobs(samples, idle_below, interval)
    _update_states(node, latest)
    _update_agent_state(node, batch, readings, now=now)
    result.samples = len(samples)
    result.unknown_gpus = sorted(unknown)
    if batch.get("dropped"):
        log.warning("telemetry node=%s agent dropped=%s readings", node.name, batch["dropped"])
    return result


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


_MINUTE_COLUMNS = (
    "gpu_id",
    "minute",
    "job_id",
    "samples",
    "utilization_samples",
    "utilization_sum",
    "utilization_max",
    "memory_samples",
    "memory_used_sum",
    "idle_samples",
    "unhealthy_samples",
    "foreign_samples",
)
_UPSERT = (
    "INSERT INTO {table} ({columns}) VALUES {values}"
    " ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
)
_SUMMED = tuple(c for c in _MINUTE_COLUMNS[3:] if c != "utilization_max")


def _merge_minutes(samples: list[GpuSample], idle_below: float) -> None:
    """Add the batch's sums into the one-minute rollups with one upsert statement.

    `INSERT ... ON CONFLICT (gpu_id, minute) DO UPDATE SET x = x + excluded.x` has the same
    syntax on SQLite (3.24+) and PostgreSQL; only the two-argument maximum is spelled
    differently (GREATEST / MAX). Django's bulk_update would build a CASE per row and
    field, which cost most of the ingest CPU in benchmarks/telemetry_ingest.py.
    """
    accs: dict[tuple[int, datetime], _Acc] = defaultdict(_Acc)
    for sample in samples:
        accs[(sample.gpu_id, _minute(sample.at))].add(sample, idle_below)
    if not accs:
        return
    table = connection.ops.quote_name(GpuMinute._meta.db_table)
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    updates = [f"{c} = {table}.{c} + excluded.{c}" for c in _SUMMED]
    updates.append(
        f"utilization_max = {greatest}(COALESCE({table}.utilization_max, excluded.utilization_max),"
        f" COALESCE(excluded.utilization_max, {table}.utilization_max))"
    )
    updates.append(f"job_id = COALESCE(excluded.job_id, {table}.job_id)")
    when = GpuMinute._meta.get_field("minute")
    rows = [
        (
            gpu_id,
            when.get_db_prep_value(minute, connection),
            acc.job_id,
            acc.samples,
            acc.util_n,
            acc.util_sum,
            acc.util_max,
            acc.mem_n,
            acc.mem_sum,
            acc.idle,
            acc.unhealthy,
            acc.foreign,
        )
        for (gpu_id, minute), acc in sorted(accs.items(), key=lambda item: item[0])
    ]
    _upsert(GpuMinute, _MINUTE_COLUMNS, rows, ("gpu_id", "minute"), updates)


def _upsert(
    model: type[Any],
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    conflict: tuple[str, ...],
    updates: list[str],
) -> None:
    """`INSERT ... ON CONFLICT (conflict) DO UPDATE SET updates` in chunks of 500 rows.

    Identifiers come from the code and the model's metadata; every value is a parameter.
    """
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for chunk in range(0, len(rows), 500):
            part = rows[chunk : chunk + 500]
            sql = _UPSERT.format(
                table=table,
                columns=", ".join(columns),
                values=", ".join([placeholders] * len(part)),
                conflict=", ".join(conflict),
                updates=", ".join(updates),
            )
            cursor.execute(sql, [value for row in part for value in row])


def _merge_jobs(samples: list[GpuSample], idle_below: float, interval: float) -> None:
    accs: dict[int, _Acc] = defaultdict(_Acc)
    for sample in samples:
        if sample.job_id is not None:
            accs[sample.job_id].add(sample, idle_below)
    if not accs:
        return
    rows = {s.job_id: s for s in JobUtilization.objects.select_for_update().filter(job_id__in=accs)}
    for job_id, acc in accs.items():
        row = rows.get(job_id) or JobUtilization(job_id=job_id)
        row.samples += acc.samples
        row.utilization_samples += acc.util_n
        row.utilization_sum += acc.util_sum
        row.memory_samples += acc.mem_n
        row.memory_used_sum += acc.mem_sum
        if acc.mem_max is not None:
            peak = row.memory_used_max
            row.memory_used_max = acc.mem_max if peak is None else max(peak, acc.mem_max)
        row.idle_samples += acc.idle
        row.gpu_seconds += acc.samples * interval
        row.histogram = [a + b for a, b in zip(row.histogram, acc.histogram, strict=True)]
        row.first_at = min(filter(None, [row.first_at, acc.first_at]))
        row.last_at = max(filter(None, [row.last_at, acc.last_at]))
        row.save()


def _update_states(node: Node, latest: dict[int, tuple[GpuSample, dict[str, Any]]]) -> None:
    if not latest:
        return
    current = dict(GpuState.objects.filter(gpu_id__in=latest).values_list("gpu_id", "at"))
    prep = GpuState._meta.get_field("at").get_db_prep_value
    rows = []
    for gpu_id, (sample, data) in latest.items():
        if gpu_id in current and current[gpu_id] > sample.at:
            continue  # an old backlog arriving after newer readings
        rows.append(
            (
                gpu_id,
                prep(sample.at, connection),
                sample.job_id,
                sample.healthy,
                str(data.get("error") or "")[:500],
                sample.utilization,
                sample.memory_used_mib,
                sample.memory_total_mib,
                sample.temperature_c,
                sample.power_w,
                sample.foreign_processes,
            )
        )
        _record_gpu_identity(sample.gpu, data.get("uuid"), sample.healthy)
    updates = [f"{c} = excluded.{c}" for c in _STATE_COLUMNS[1:]]
    _upsert(GpuState, _STATE_COLUMNS, rows, ("gpu_id",), updates)


_STATE_COLUMNS = (
    "gpu_id", "at", "job_id", "healthy", "error", "utilization", "memory_used_mib",
    "memory_total_mib", "temperature_c", "power_w", "foreign_processes",
)  # fmt: skip


def _record_gpu_identity(gpu: Gpu, uuid: str | None, healthy: bool) -> None:
    """Fill `Gpu.uuid` when first reported (or changed) and mirror health; only on change."""
    changes: dict[str, Any] = {}
    if uuid and gpu.uuid != uuid:
        changes["uuid"] = uuid
    if gpu.healthy != healthy:
        changes["healthy"] = healthy
    if changes:
        Gpu.objects.filter(pk=gpu.pk).update(**changes)
        for key, value in changes.items():
            setattr(gpu, key, value)
        log.info("gpu %s/%s %s", gpu.node_id, gpu.index, changes)


def _update_agent_state(
    node: Node, batch: dict[str, Any], readings: list[dict[str, Any]], *, now: datetime
) -> None:
    last = readings[-1]
    prep = NodeAgentState._meta.get_field("last_reading_at").get_db_prep_value
    table = connection.ops.quote_name(NodeAgentState._meta.db_table)
    newer = f"excluded.last_reading_at >= {table}.last_reading_at"
    row = (
        node.pk,
        prep(now, connection),
        prep(last["at"], connection),
        bool(last.get("healthy", True)),
        str(last.get("error") or "")[:500],
        str(batch.get("source") or "")[:32],
        float(batch.get("interval_s", 10)),
        int(batch.get("dropped", 0)),
    )
    updates = [
        "last_batch_at = excluded.last_batch_at",
        "source = excluded.source",
        "interval_s = excluded.interval_s",
        f"dropped_total = {table}.dropped_total + excluded.dropped_total",
        # Only a newer reading moves the node's health (an old backlog must not). Every
        # right-hand side sees the row as it was, so the order of these does not matter.
        *(
            f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE {table}.{c} END"
            for c in ("healthy", "error", "last_reading_at")
        ),
    ]
    _upsert(NodeAgentState, _AGENT_COLUMNS, [row], ("node_id",), updates)


_AGENT_COLUMNS = (
    "node_id", "last_batch_at", "last_reading_at", "healthy", "error", "source", "interval_s",
    "dropped_total",
)  # fmt: skip


# --- retention ---------------------------------------------------------------------------


@dataclass
class RetentionResult:
    samples_deleted: int
    minutes_deleted: int


def apply_retention(*, now: datetime) -> RetentionResult:
    """Delete raw samples and rollups older than their windows. Safe to run twice."""
    raw = timedelta(hours=float(setting("KARIMASU_TELEMETRY_RAW_RETENTION_HOURS", 24)))
    rollup = timedelta(days=float(setting("KARIMASU_TELEMETRY_ROLLUP_RETENTION_DAYS", 90)))
    samples, _ = GpuSample.objects.filter(at__lt=now - raw).delete()
    minutes, _ = GpuMinute.objects.filter(minute__lt=now - rollup).delete()
    log.info("telemetry retention samples=%d minutes=%d", samples, minutes)
    return RetentionResult(samples, minutes)
