"""The ClusterBackend protocol and the plain data it speaks.

Services talk to the cluster only through this protocol; `scheduler.cluster.kubernetes`
is the real implementation (the only module that imports the `kubernetes` client). The
data classes carry no Django types, so the protocol is easy to fake only where nothing
else can run — tests use the real implementation against the Kubernetes API emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class ClusterError(Exception):
    """Base of cluster failures."""


class ClusterUnavailable(ClusterError):
    """The API server cannot be reached (or answered 5xx). Callers back off and keep state."""


class ResyncRequired(ClusterError):
    """A watch's resourceVersion is too old (410 Gone): list again, then watch from there."""


class ClusterRejected(ClusterError):
    """The API server refused the request (4xx other than 404/409): a bug or a bad spec."""


@dataclass(frozen=True)
class ForeignUsage:
    """What pods Karimasu did not create request on one node. ``daemon_*`` is the part of
    DaemonSet and static (mirror) pods: on the node for good, unlike other teams' work."""

    gpus: int = 0
    cpu_millis: int = 0
    memory_mb: int = 0
    pods: tuple[str, ...] = ()  # "namespace/name", sorted
    daemon_cpu_millis: int = 0
    daemon_memory_mb: int = 0


@dataclass(frozen=True)
class NodeInfo:
    """A Node, and what pods Karimasu did not create (DaemonSets, static pods, other
    namespaces' workloads) request on it: ``foreign`` is held, whatever Karimasu decides."""

    name: str
    gpu_model: str
    gpu_memory_mb: int | None
    gpu_capacity: int
    gpu_allocatable: int
    cpu_allocatable_millis: int
    memory_allocatable_mb: int
    ready: bool
    cordoned: bool
    taints: list[dict[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    foreign: ForeignUsage = field(default_factory=ForeignUsage)
    # Allocatable extended resources other than GPUs (RDMA devices, ...): name -> count.
    extended: dict[str, int] = field(default_factory=dict)
    # "dra" when the cluster's NVIDIA DRA driver publishes this node's GPUs (a pod gets the
    # exact devices Karimasu booked), else "device-plugin" (a count: the cluster picks).
    gpu_allocation: str = "device-plugin"
    # GPU index -> UUID, as the DRA driver publishes them (empty without DRA).
    gpu_uuids: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GpuDevice:
    """One GPU Karimasu booked for an attempt: its index on the node and its UUID ("" while
    the node agent has not reported it)."""

    index: int
    uuid: str = ""


@dataclass(frozen=True)
class Mount:
    """An admin-defined named volume: a PVC mounted at a path."""

    name: str
    claim: str
    path: str
    read_only: bool = True
    sub_path: str = ""  # a directory of the volume instead of its root (pipeline steps)


@dataclass(frozen=True)
class JobSpec:
    """Everything the cluster needs to run one attempt of a job on a chosen node."""

    job_id: int
    attempt: int
    name: str
    image: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    gpus: int
    cpu_millis: int
    memory_mb: int
    node_name: str
    max_runtime_s: int
    user: str
    team: str
    mounts: list[Mount] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    image_pull_secrets: list[str] = field(default_factory=list)
    backoff_limit: int = 0
    ttl_after_finished_s: int = 3600
    termination_grace_s: int = 60
    # The Kubernetes PriorityClass of the pod (empty: the cluster's default), so that other
    # higher-priority pods of the cluster do not evict training.
    priority_class_name: str = ""
    # Scratch space on the node (``/scratch``), requested as ephemeral storage.
    scratch_gb: int = 20
    # Variables read from Secrets: {"VAR": (secret name, key)}.
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Karimasu enforces max_runtime_s from the container's start (reconcile); the Job's
    # activeDeadlineSeconds, counted from its creation, is max_runtime_s + this backstop.
    start_timeout_s: int = 0
    # How the pod gets its GPUs (the node's `gpu_allocation`): "dra" requests exactly
    # `gpu_devices` with a ResourceClaim; "device-plugin" requests `gpus` as nvidia.com/gpu.
    gpu_allocation: str = "device-plugin"
    gpu_devices: list[GpuDevice] = field(default_factory=list)
    # A multi-node job (gang): ``nodes`` pods, one per node of ``node_names`` (rank 0's is
    # ``node_name``), each with ``gpus`` GPUs; an Indexed Job with a headless Service.
    nodes: int = 1
    node_names: tuple[str, ...] = ()
    master_port: int = 29500
    # Extended resources (RDMA/InfiniBand) each pod requests, name -> count.
    extended: dict[str, int] = field(default_factory=dict)
    # TCP ports the container serves on (a session's workspace), declared as containerPorts
    # so the API server's pod proxy may reach them.
    ports: tuple[int, ...] = ()


# Cluster-side phases of one attempt, mapped onto Karimasu's statuses by the services.
PENDING = "pending"  # created, not yet running (scheduling, pulling the image)
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class AttemptState:
    """What the cluster says about one attempt. `reason` is a stable code, e.g.
    unschedulable, image_pull_failure, oom_killed, deadline_exceeded, evicted, node_lost.
    `started_at` is when its container started (the Job's start before that)."""

    job_id: int
    attempt: int
    phase: str
    reason: str = ""
    message: str = ""
    node_name: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    # The attempt's pods not yet finished (telemetry maps GPU processes to jobs by pod).
    pod_uids: tuple[str, ...] = ()
    # A gang's pods as the cluster placed them: (rank, node name), rank order.
    pods: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class SubmitResult:
    name: str
    created: bool  # False: it already existed (a retry), which is not an error


class ClusterBackend(Protocol):
    def inventory(self) -> list[NodeInfo]: ...

    def submit(self, spec: JobSpec) -> SubmitResult: ...

    def status(self, job_id: int, attempt: int) -> AttemptState | None: ...

    def list_owned(self) -> list[AttemptState]: ...

    def logs(
        self,
        job_id: int,
        attempt: int,
        *,
        tail_lines: int | None = None,
        follow: bool = False,
        read_timeout_s: float | None = None,
    ) -> Iterator[str]: ...

    def cancel(self, job_id: int, attempt: int, *, grace_s: int | None = None) -> bool: ...

    def repair_claims(self) -> list[str]: ...
    def set_deadline(self, job_id: int, attempt: int, active_deadline_s: int) -> bool: ...

    def watch(
        self, kind: str, resource_version: str | None, *, timeout_s: int = 30
    ) -> Iterator[str]: ...
