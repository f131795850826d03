"""Training jobs. `status` changes only through `scheduler.services.transition_job`."""

from __future__ import annotations

import sys
import uuid
from array import array
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import models
from django.db.models.lookups import LessThanOrEqual

from portal.accounts.models import Team
from scheduler import messages, states
from scheduler.cluster.mapping import job_name
from scheduler.core.decisions import Reason
from scheduler.limits import MAX_GPUS, MAX_JOB_GPUS
from scheduler.models.inventory import Node


class JobStatus(models.TextChoices):
    QUEUED = states.QUEUED
    ADMITTED = states.ADMITTED
    STARTING = states.STARTING
    RUNNING = states.RUNNING
    SUCCEEDED = states.SUCCEEDED
    FAILED = states.FAILED
    CANCELLED = states.CANCELLED
    TIMED_OUT = states.TIMED_OUT
    PREEMPTED = states.PREEMPTED
    LOST = states.LOST


class Job(models.Model):
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs"
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="jobs")
    image = models.CharField(max_length=500)
    command = models.JSONField(default=list, blank=True)
    args = models.JSONField(default=list, blank=True)
    env = models.JSONField(default=dict, blank=True)
    gpus = models.PositiveSmallIntegerField(default=1)  # per node (per pod)
    # A multi-node job (a gang) runs one pod of ``gpus`` GPUs on each of ``nodes`` nodes.
    nodes = models.PositiveSmallIntegerField(default=1)
    gpu_models = models.JSONField(default=list, blank=True)  # acceptable; empty = any
    cpu_millis = models.PositiveIntegerField(default=1000)
    memory_mb = models.PositiveIntegerField(default=4096)
    max_runtime_s = models.PositiveIntegerField()
    priority_class = models.CharField(max_length=32, default="normal")
    preemptible = models.BooleanField(default=True)
    mounts = models.JSONField(default=list, blank=True)
    annotations = models.JSONField(default=dict, blank=True)  # passed to the Kubernetes Job
    # Environment variables read from named Secrets: {"VAR": {"secret": name, "key": key}}.
    secret_env = models.JSONField(default=dict, blank=True)

    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    reason = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=1000, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    node = models.ForeignKey(
        Node, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    gpu_indices = models.JSONField(default=list, blank=True)
    # UIDs of the current attempt's pods, as reconcile last saw them: telemetry credits a GPU
    # process to the job by its pod (cgroup), not by the index Karimasu placed it on.
    pod_uids = models.JSONField(default=list, blank=True)
    # A gang's placement, every rank's pod in rank order: [{"node": name, "gpu_indices": [..]}]
    # (rank 0 is also ``node``/``gpu_indices``). Empty for a single-node job.
    placements = models.JSONField(default=list, blank=True)
    borrowed = models.BooleanField(default=False)
    sweep = models.ForeignKey(
        "scheduler.Sweep", on_delete=models.CASCADE, null=True, blank=True, related_name="jobs"
    )
    sweep_params = models.JSONField(default=dict, blank=True)
    # Written by each scheduling cycle for waiting jobs: when it may start. Where it stands
    # in the line is the cycle's ``QueueOrder`` (``queue_place``, ``queue_position``).
    eta = models.DateTimeField(null=True, blank=True)
    # Set when preempted: the job holds its GPUs until then (SIGTERM grace).
    terminating_until = models.DateTimeField(null=True, blank=True)
    # Set when preempted: the queued job it was stopped for. The scheduler keeps the GPUs it
    # frees for that job while it waits (``Allocation.preempted_for``); cleared on requeue.
    preempted_for = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    exit_code = models.IntegerField(null=True, blank=True)

    submitted_at = models.DateTimeField()
    admitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    _queue_place: QueuePlace | None  # see ``queue_place``

    class Meta:
        ordering = ["-submitted_at", "-pk"]
        indexes = [
            models.Index(fields=["team", "status"]),
            models.Index(fields=["owner", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(gpus__lte=MAX_GPUS), name="job_gpus_at_most_8"
            ),
            models.CheckConstraint(
                condition=models.Q(max_runtime_s__gt=0), name="job_max_runtime_positive"
            ),
            models.CheckConstraint(condition=models.Q(nodes__gte=1), name="job_nodes_at_least_1"),
            models.CheckConstraint(
                condition=LessThanOrEqual(models.F("gpus") * models.F("nodes"), MAX_JOB_GPUS),
                name="job_total_gpus_at_most_64",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.name} ({self.status})"

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(*args, **kwargs)
        self.__dict__.pop("_queue_place", None)  # the status, or the line, may have moved

    @property
    def queue_place(self) -> QueuePlace | None:
        """Where the last cycle left this queued job in line (None when not queued, or
        queued since). Read once per instance; ``attach_queue_places`` fills a list's in one
        read of the order."""
        if "_queue_place" not in self.__dict__:
            attach_queue_places([self])
        return self._queue_place

    @property
    def queue_position(self) -> int | None:
        """1-based place among the waiting jobs in rank order, as of the last cycle."""
        place = self.queue_place
        return place.position if place is not None else None

    @property
    def shown_message(self) -> str:
        """``message`` as stored, with the count filled in for a job waiting behind others
        (the cycle stores no count in the row: it would change with every admission)."""
        return waiting_message(self.reason, self.message, self.queue_place)

    @property
    def total_gpus(self) -> int:
        """Every GPU the job holds: ``nodes x gpus``."""
        return self.nodes * self.gpus

    @property
    def is_gang(self) -> bool:
        return self.nodes > 1

    def pods(self) -> list[tuple[str, list[int]]]:
        """Every rank's ``(node name, GPU indices)``, rank 0 first; empty before placement."""
        if self.placements:
            return [(str(p["node"]), [int(i) for i in p["gpu_indices"]]) for p in self.placements]
        return [(self.node.name, list(self.gpu_indices))] if self.node is not None else []

    @property
    def cluster_name(self) -> str:
        """The Kubernetes Job name of the current attempt: deterministic, so retries find it."""
        return job_name(self.pk, self.attempt)

    def held_since(self, default: datetime) -> datetime:
        """``gpus_held_since`` of this job."""
        return gpus_held_since(self.started_at, self.admitted_at, default)

    def holds_gpus_until(self, now: datetime) -> datetime:
        """``gpus_held_until`` of this job."""
        return gpus_held_until(self.started_at, self.admitted_at, self.max_runtime_s, now)


class QueuePlace(NamedTuple):
    position: int  # 1-based, among the waiting jobs in rank order
    ahead: int  # jobs ranked above that also wait for GPUs (``Waiting.ahead``)


class QueueLine(Mapping[int, QueuePlace]):
    """Job id -> ``QueuePlace`` of one stored line (built per lookup: a line is ~10k)."""

    def __init__(self, ids: array[int], ahead: array[int]) -> None:
        self._index = {pk: i for i, pk in enumerate(ids)}
        self._ahead = ahead

    def __getitem__(self, pk: int) -> QueuePlace:
        i = self._index[pk]
        return QueuePlace(i + 1, self._ahead[i])

    def __iter__(self) -> Iterator[int]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _pack(ids: list[int], ahead: list[int]) -> bytes:
    """The line as stored: the ids, then the counts, as little-endian signed 64-bit."""
    line = array("q", ids)
    line.extend(ahead)
    if sys.byteorder != "little":
        line.byteswap()
    return line.tobytes()


def _unpack(data: bytes) -> tuple[array[int], array[int]]:
    line = array("q")
    if len(data) % 16 == 0:  # else torn or not a line: no places rather than wrong ones
        line.frombytes(data)
    if sys.byteorder != "little":
        line.byteswap()
    half = len(line) // 2
    return line[:half], line[half:]


class QueueOrder(models.Model):
    """The last cycle's line of waiting jobs: one row, written whole by a cycle that
    changed it.

    Positions live here rather than on each job's row: one admission moves every job below
    it up a place, and rewriting ~10,000 job rows for that cost a busy cycle most of its
    time. ``line`` is binary (``_pack``) and stored uncompressed on PostgreSQL (migration
    0019): as JSON its write cost a cycle ~14 ms, as bytes ~1 ms. ``token`` is new at every
    write, so a process keeps the decoded line until it changes (a rolled-back write's
    token is never seen again)."""

    at = models.DateTimeField()
    token = models.CharField(max_length=32)
    line = models.BinaryField(default=b"")

    _cache: tuple[str, QueueLine] = ("", QueueLine(array("q"), array("q")))  # last read
    _written: tuple[str, tuple[list[int], list[int]] | None] = ("", None)  # ... and written

    def __str__(self) -> str:
        return f"queue order of {self.at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, at: datetime, ids: list[int], ahead: list[int]) -> bool:
        """Store a cycle's line (in the cycle's transaction, under the cycle's lock); False
        when it is the line this process stored last and still there: nothing written."""
        token, line = cls._written
        if line == (ids, ahead) and cls.objects.filter(pk=1, token=token).exists():
            return False
        token = uuid.uuid4().hex
        fields = {"at": at, "token": token, "line": _pack(ids, ahead)}
        if not cls.objects.filter(pk=1).update(**fields):
            cls.objects.create(pk=1, **fields)
        cls._written = (token, (ids, ahead))
        return True

    @classmethod
    def places(cls) -> QueueLine:
        """Job id -> its place in the last cycle's line: one query, which brings the line
        only when it changed since this process last decoded it."""
        known, places = cls._cache
        row = (
            cls.objects.filter(pk=1)
            .annotate(
                changed=models.Case(
                    models.When(token=known, then=None),
                    default=models.F("line"),
                    output_field=models.BinaryField(),
                )
            )
            .values_list("token", "changed")
            .first()
        )
        if row is None:
            return QueueLine(array("q"), array("q"))
        token, data = row
        if token == known:
            return places
        places = QueueLine(*_unpack(bytes(data or b"")))
        cls._cache = (token, places)
        return places


def attach_queue_places(jobs: Iterable[Job]) -> None:
    """Give each job its ``queue_place`` from one read of the order."""
    places: QueueLine | None = None
    for job in jobs:
        if job.status != states.QUEUED:
            job._queue_place = None
            continue
        if places is None:
            places = QueueOrder.places()
        job._queue_place = places.get(job.pk)


def waiting_message(reason: str, message: str, place: QueuePlace | None) -> str:
    """A stored waiting message as it reads now: "behind other jobs" with their count."""
    if reason == Reason.BEHIND and message == messages.WAIT_BEHIND_OTHERS and place is not None:
        return messages.stored(messages.WAIT_BEHIND, ahead=place.ahead)
    return message


class JobEvent(models.Model):
    """Every status change, with why. The job's timeline in the UI and the audit trail."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    reason = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=1000, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.from_status} -> {self.to_status} ({self.reason})"


class Sweep(models.Model):
    """N jobs from one template and a parameter grid or list, run at most `parallelism`
    at a time."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sweeps"
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="sweeps")
    template = models.JSONField()
    parameters = models.JSONField(help_text="The grid or list the jobs were expanded from.")
    parallelism = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"sweep {self.pk} {self.name}"


def gpus_by_node(
    node: str | None, gpu_indices: list[int] | None, placements: list[dict[str, Any]] | None
) -> dict[str, list[int]]:
    """Node name -> the GPU indices a job holds there: every rank's of a gang
    (``placements``), else its one node's. For callers that read plain rows (the board,
    telemetry, bookings); ``Job.pods`` is the same for an instance.

    >>> gang = [{"node": "a", "gpu_indices": [0]}, {"node": "b", "gpu_indices": [1]}]
    >>> gpus_by_node("a", [0], gang), gpus_by_node("a", [2, 3], [])
    ({'a': [0], 'b': [1]}, {'a': [2, 3]})
    """
    if placements:
        return {str(p["node"]): [int(i) for i in p["gpu_indices"]] for p in placements}
    return {node: [int(i) for i in gpu_indices or ()]} if node else {}


def on_nodes(node_ids: Any) -> models.Q:
    """Jobs that may hold GPUs on the nodes ``node_ids``: placed there (rank 0), or gangs
    (whose other ranks' nodes are in ``placements``: read them with ``gpus_by_node``)."""
    return models.Q(node_id__in=node_ids) | models.Q(nodes__gt=1, node__isnull=False)


def gpus_held_since(
    started_at: datetime | None, admitted_at: datetime | None, default: datetime
) -> datetime:
    """When a job took its GPUs: its start, else its admission, else ``default``."""
    return started_at or admitted_at or default


def gpus_held_until(
    started_at: datetime | None, admitted_at: datetime | None, max_runtime_s: int, now: datetime
) -> datetime:
    """When a job's GPUs come free at the latest: its start, else its admission, else
    ``now``, plus its max runtime (the Kubernetes deadline). The one rule for the board (which
    reads plain rows, hence the fields), the bookings' busy intervals and the cycle's snapshot
    (whose ``Allocation.expected_end`` is the same sum on floats)."""
    return gpus_held_since(started_at, admitted_at, now) + timedelta(seconds=max_runtime_s)
