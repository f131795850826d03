"""Pure translation between Karimasu's data and Kubernetes objects (plain dicts).

- `job_manifest`: a JobSpec -> the `batch/v1` Job body, restricted Pod Security profile; a
  multi-node job (gang) is an Indexed Job (`gang_job_fields`, `gang_pod_fields`, `gang_env`)
  with a headless Service (`gang_service`).
- `node_info`: a Node -> NodeInfo (GPUs from `nvidia.com/gpu` and GPU feature discovery),
  with what other pods hold on it (`foreign_usage`).
- `attempt_state`: a Job and its Pods -> AttemptState (phase and a stable reason code).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from scheduler.cluster.backend import (
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    AttemptState,
    ForeignUsage,
    JobSpec,
    Mount,
    NodeInfo,
)

GPU_RESOURCE = "nvidia.com/gpu"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB = "karimasu.io/job-id"
LABEL_ATTEMPT = "karimasu.io/attempt"
LABEL_USER = "karimasu.io/user"
LABEL_TEAM = "karimasu.io/team"
OWNED_SELECTOR = f"{LABEL_MANAGED_BY}=karimasu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB, from GPU feature discovery

#: A waiting container's reason -> (Karimasu's reason code, what it means for the user).
#: ``invalid_image`` can never start; the others may clear (a registry hiccup, a secret
#: created late) and are given the start timeout.
_PULL_FAILURE = (
    "image_pull_failure",
    "The image cannot be pulled: check its name and tag and the registry's pull secret",
)
WAITING_REASONS: dict[str, tuple[str, str]] = {
    "ImagePullBackOff": _PULL_FAILURE,
    "ErrImagePull": _PULL_FAILURE,
    "InvalidImageName": ("invalid_image", "The image reference is not valid"),
    "ErrImageNeverPull": ("invalid_image", "The image is not on the node and may not be pulled"),
    "CreateContainerConfigError": (
        "container_config_error",
        "The container's configuration is incomplete (a missing Secret or ConfigMap?)",
    ),
    "CreateContainerError": (
        "container_start_error",
        "The container could not be created (a driver or runtime problem on the node?)",
    ),
    "RunContainerError": (
        "container_start_error",
        "The container could not be started (its command, or the node's GPU driver?)",
    ),
    "CrashLoopBackOff": (
        "crash_loop",
        "The container keeps exiting and is restarted after a growing delay: see its log",
    ),
    "ContainerCreating": ("starting", ""),
    "PodInitializing": ("starting", ""),
}


def job_name(job_id: int, attempt: int) -> str:
    """Deterministic per attempt, a valid DNS-1123 label.

    >>> job_name(42, 2)
    'karimasu-job-42-a2'
    """
    return f"karimasu-job-{job_id}-a{attempt}"


def label_value(text: str) -> str:
    """A string made safe as a label value (63 chars of [A-Za-z0-9._-], alnum at ends).

    >>> label_value("alice@example.com")
    'alice_example.com'
    """
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in text)
    cleaned = cleaned[:63]
    return cleaned.strip("._-") or "unknown"


# --- JobSpec -> Job ----------------------------------------------------------------------


def job_manifest(spec: JobSpec, *, namespace: str, run_as_user: int = 1000) -> dict[str, Any]:
    """The Job body for one attempt, pinned to `spec.node_name`.

    Pinning uses a required node affinity on kubernetes.io/hostname rather than
    `spec.nodeName`, so the real scheduler still checks GPU room and taints.
    """
    name = job_name(spec.job_id, spec.attempt)
    labels = {
        LABEL_MANAGED_BY: "karimasu",
        LABEL_JOB: str(spec.job_id),
        LABEL_ATTEMPT: str(spec.attempt),
        LABEL_USER: label_value(spec.user),
        LABEL_TEAM: label_value(spec.team),
    }
    pod_spec = _pod_spec(spec, run_as_user)
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        # A backstop: it counts from the Job's creation (image pulls, waiting for the
        # node); reconcile enforces max_runtime_s from the container's start.
        "activeDeadlineSeconds": spec.max_runtime_s + max(0, spec.start_timeout_s),
        "ttlSecondsAfterFinished": spec.ttl_after_finished_s,
        "template": {
            "metadata": {"labels": labels, "annotations": dict(spec.annotations)},
            "spec": pod_spec,
        },
    }
    if spec.nodes > 1:
        job_spec.update(gang_job_fields(spec))
        pod_spec.update(gang_pod_fields(spec, labels))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"karimasu.io/name": spec.name[:253]},
        },
        "spec": job_spec,
    }


# --- multi-node jobs (gangs) ------------------------------------------------------------------

#: The label (and annotation) an Indexed Job puts on each pod: its completion index, the rank.
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def gang_job_fields(spec: JobSpec) -> dict[str, Any]:
    """A gang's Job: one pod per node (completion index = rank), all at once, and the first
    failed pod fails the whole Job (its other pods are then deleted by the Job controller):
    no retry inside the Job, Karimasu retries the gang as a new attempt."""
    return {
        "completionMode": "Indexed",
        "completions": spec.nodes,
        "parallelism": spec.nodes,
        "backoffLimit": 0,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]},
                },
                # Evicted or its node lost: the gang is broken too (reconcile requeues it).
                {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        },
    }


def gang_pod_fields(spec: JobSpec, labels: dict[str, str]) -> dict[str, Any]:
    """A gang pod's placement and name: on one of the gang's nodes (``node_names``), never
    two on one node (required pod anti-affinity on the hostname), hostname ``<job>-<rank>``
    (set by the Job controller) in the headless Service's subdomain, so rank 0 is
    ``<job>-0.<job>``. Which rank lands on which of the nodes is the cluster's choice: every
    pod asks the same GPUs, so each node holds what the core accounted to it; reconcile
    records the actual rank order (``attempt_state``'s ``pods``)."""
    name = job_name(spec.job_id, spec.attempt)
    mine = {LABEL_JOB: labels[LABEL_JOB], LABEL_ATTEMPT: labels[LABEL_ATTEMPT]}
    return {
        "subdomain": name,
        "affinity": {
            "nodeAffinity": _pinned(list(spec.node_names)),
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": mine}, "topologyKey": HOSTNAME_LABEL}
                ]
            },
        },
    }


def gang_env(spec: JobSpec) -> list[dict[str, Any]]:
    """torchrun/MPI rendezvous variables of a gang's pods: rank 0's address and port, the
    world (``nodes x GPUs per node`` processes: one per GPU, at least one per node), and the
    pod's rank from its completion index (``NODE_RANK``, also ``RANK``; torchrun gives each
    process its own)."""
    name = job_name(spec.job_id, spec.attempt)
    per_node = max(spec.gpus, 1)
    index = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_LABEL}']"}}
    plain = {
        "MASTER_ADDR": f"{name}-0.{name}",
        "MASTER_PORT": str(spec.master_port),
        "WORLD_SIZE": str(spec.nodes * per_node),
        "NNODES": str(spec.nodes),
        "NPROC_PER_NODE": str(per_node),
    }
    return [
        *({"name": k, "value": v} for k, v in plain.items()),
        {"name": "NODE_RANK", "valueFrom": index},
        {"name": "RANK", "valueFrom": index},
    ]


GANG_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NNODES", "NPROC_PER_NODE", "NODE_RANK")


def gang_service(spec: JobSpec, *, namespace: str, owner_uid: str = "") -> dict[str, Any]:
    """The headless Service of a gang (named like its Job) that gives each pod the DNS name
    ``<job>-<rank>.<job>``; not-ready pods are published too, so rank 0 is reachable while
    the others start. Owned by the Job (``owner_uid``): deleted with it."""
    name = job_name(spec.job_id, spec.attempt)
    labels = {
        LABEL_MANAGED_BY: "karimasu",
        LABEL_JOB: str(spec.job_id),
        LABEL_ATTEMPT: str(spec.attempt),
    }
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": owner_uid}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL_JOB: str(spec.job_id), LABEL_ATTEMPT: str(spec.attempt)},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": spec.master_port, "protocol": "TCP"}],
        },
    }


def _pinned(nodes: list[str]) -> dict[str, Any]:
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": nodes}]}
            ],
        }
    }


HOME = "/home/karimasu"
SCRATCH = "/scratch"
POD_INFO = "/etc/karimasu/pod"
#: Annotation set on a pod when Karimasu stops it (preemption, cancel): its time, readable
#: in the container at ``/etc/karimasu/pod/annotations`` (downward API) to checkpoint, before
#: SIGTERM and the grace period.
STOP_ANNOTATION = "karimasu.io/stop-requested-at"


def _env(spec: JobSpec) -> list[dict[str, Any]]:
    """The job's environment, plus ``HOME`` (a writable home: NGC images and ``~/.cache``
    need one) and ``KARIMASU_POD_INFO``; a job without GPUs gets
    ``NVIDIA_VISIBLE_DEVICES=void`` so a CUDA image sees no GPU of the node (the NVIDIA
    runtime would otherwise expose them all). Users cannot set NVIDIA_* themselves
    (``services.job_inputs``)."""
    env = {"HOME": HOME, "KARIMASU_POD_INFO": POD_INFO, **spec.env}
    if not spec.gpus:
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    gang = gang_env(spec) if spec.nodes > 1 else []
    ours = {e["name"] for e in gang}
    plain: list[dict[str, Any]] = [
        {"name": k, "value": v} for k, v in sorted(env.items()) if k not in ours
    ]
    secrets = [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for k, (secret, key) in sorted(spec.secret_env.items())
        if k not in env and k not in ours
    ]
    return plain + secrets + gang


def _scratch_volumes(spec: JobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes every job gets, and their mounts: ``/dev/shm`` in memory (PyTorch's
    DataLoader workers and NCCL need more than the runtime's 64 MB; it counts against the
    memory limit, so it is half of it), a writable home, a scratch directory on the node's
    disk (its size is requested as ephemeral storage), and the pod's own annotations (the
    stop signal)."""
    shm_mb = max(64, spec.memory_mb // 2)
    volumes = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_mb}Mi"}},
        {"name": "home", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": f"{spec.scratch_gb}Gi"}},
        {
            "name": "pod-info",
            "downwardAPI": {
                "items": [
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
                ]
            },
        },
    ]
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108 - the pod's shared memory
        {"name": "home", "mountPath": HOME},
        {"name": "scratch", "mountPath": SCRATCH},
        {"name": "pod-info", "mountPath": POD_INFO, "readOnly": True},
    ]
    return volumes, mounts


def _volume_mount(mount: Mount) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": mount.name,
        "mountPath": mount.path,
        "readOnly": mount.read_only,
    }
    if mount.sub_path:
        entry["subPath"] = mount.sub_path
    return entry


def _pod_spec(spec: JobSpec, run_as_user: int) -> dict[str, Any]:
    resources: dict[str, dict[str, str]] = {
        "requests": {
            "cpu": f"{spec.cpu_millis}m",
            "memory": f"{spec.memory_mb}Mi",
            "ephemeral-storage": f"{spec.scratch_gb}Gi",
        },
        "limits": {"memory": f"{spec.memory_mb}Mi"},
    }
    scratch_volumes, scratch_mounts = _scratch_volumes(spec)
    if spec.gpus:
        resources["requests"][GPU_RESOURCE] = str(spec.gpus)
        resources["limits"][GPU_RESOURCE] = str(spec.gpus)
    for name, count in sorted(spec.extended.items()):  # RDMA devices (extended resources)
        resources["requests"][name] = str(count)
        resources["limits"][name] = str(count)
    container: dict[str, Any] = {
        "name": "main",
        "image": spec.image,
        "env": _env(spec),
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "privileged": False,
        },
        "volumeMounts": [
            *scratch_mounts,
            *(_volume_mount(m) for m in spec.mounts),
        ],
    }
    if spec.ports:
        container["ports"] = [{"containerPort": p, "protocol": "TCP"} for p in spec.ports]
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "terminationGracePeriodSeconds": spec.termination_grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": run_as_user,
            "runAsGroup": run_as_user,
            # Volumes (PVCs, scratch) are writable by the job's group.
            "fsGroup": run_as_user,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": {"nodeAffinity": _pinned([spec.node_name])},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "imagePullSecrets": [{"name": s} for s in spec.image_pull_secrets],
        "containers": [container],
        "volumes": [
            *scratch_volumes,
            *(
                {
                    "name": m.name,
                    "persistentVolumeClaim": {"claimName": m.claim, "readOnly": m.read_only},
                }
                for m in spec.mounts
            ),
        ],
        **({"priorityClassName": spec.priority_class_name} if spec.priority_class_name else {}),
    }


# --- Node -> NodeInfo ----------------------------------------------------------------------


def parse_quantity(value: str | int | None) -> Decimal:
    """A Kubernetes quantity as a number of base units ("2", "500m", "64Gi", "1e3").

    >>> parse_quantity("500m"), parse_quantity("1Gi"), parse_quantity("2k")
    (Decimal('0.500'), Decimal('1073741824'), Decimal('2000'))
    """
    if value is None or value == "":
        return Decimal(0)
    text = str(value).strip()
    binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
    decimal = {
        "n": Decimal("1e-9"),
        "u": Decimal("1e-6"),
        "m": Decimal("1e-3"),
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "P": 10**15,
        "E": 10**18,
    }
    for suffix, factor in binary.items():
        if text.endswith(suffix):
            return Decimal(text[:-2]) * factor
    if text[-1] in decimal and not text[-1].isdigit():
        return Decimal(text[:-1]) * Decimal(decimal[text[-1]])
    return Decimal(text)


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    """What a pod holds on its node, as the scheduler counts it: the larger of its app
    containers' summed requests (sidecar init containers included) and any single init
    container's, plus ``spec.overhead``. A request left unset falls back to the limit.

    >>> pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}},
    ...                                {"resources": {"limits": {"cpu": "500m"}}}],
    ...                 "initContainers": [{"resources": {"requests": {"cpu": "2"}}}]}}
    >>> pod_requests(pod)["cpu"]
    Decimal('2')
    """
    spec = pod.get("spec") or {}

    def of(container: dict[str, Any]) -> dict[str, Decimal]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return {name: parse_quantity(value) for name, value in merged.items()}

    total: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    sidecars: dict[str, Decimal] = {}
    for container in spec.get("initContainers") or []:
        wanted = of(container)
        for name, amount in wanted.items():
            # a running sidecar holds its request next to the later init containers
            init_peak[name] = max(init_peak.get(name, Decimal(0)), sidecars.get(name, 0) + amount)
        if container.get("restartPolicy") == "Always":
            for name, amount in wanted.items():
                sidecars[name] = sidecars.get(name, Decimal(0)) + amount
    for container in spec.get("containers") or []:
        for name, amount in of(container).items():
            total[name] = total.get(name, Decimal(0)) + amount
    for name, amount in sidecars.items():
        total[name] = total.get(name, Decimal(0)) + amount
    for name, amount in init_peak.items():
        total[name] = max(total.get(name, Decimal(0)), amount)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Decimal(0)) + parse_quantity(value)
    return total


def is_karimasu_pod(pod: dict[str, Any], namespace: str) -> bool:
    """A pod of one of Karimasu's Jobs: in the jobs namespace with Karimasu's label."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    return meta.get("namespace") == namespace and labels.get(LABEL_MANAGED_BY) == "karimasu"


def is_daemon_pod(pod: dict[str, Any]) -> bool:
    """A pod that stays on its node for good: a DaemonSet's, or a static pod's mirror."""
    meta = pod.get("metadata") or {}
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return True
    return any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or [])


def _mib(amount: Decimal) -> int:
    return int((amount / 2**20).to_integral_value(rounding=ROUND_CEILING))


def _millis(amount: Decimal) -> int:
    return int((amount * 1000).to_integral_value(rounding=ROUND_CEILING))


def foreign_usage(pods: list[dict[str, Any]], namespace: str) -> dict[str, ForeignUsage]:
    """Node name -> what pods Karimasu did not create hold there: bound, not Succeeded or
    Failed, in any namespace (DaemonSets, static pods, other teams' workloads, pods in the
    jobs namespace without Karimasu's label)."""
    sums: dict[str, dict[str, Decimal]] = {}
    names: dict[str, list[str]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if not node or phase in ("Succeeded", "Failed") or is_karimasu_pod(pod, namespace):
            continue
        wanted = pod_requests(pod)
        row = sums.setdefault(node, {})
        daemon = is_daemon_pod(pod)
        for key, resource in (("gpus", GPU_RESOURCE), ("cpu", "cpu"), ("memory", "memory")):
            amount = wanted.get(resource, Decimal(0))
            row[key] = row.get(key, Decimal(0)) + amount
            if daemon:
                row[f"daemon_{key}"] = row.get(f"daemon_{key}", Decimal(0)) + amount
        meta = pod.get("metadata") or {}
        names.setdefault(node, []).append(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
    return {
        node: ForeignUsage(
            gpus=int(row.get("gpus", 0)),
            cpu_millis=_millis(row.get("cpu", Decimal(0))),
            memory_mb=_mib(row.get("memory", Decimal(0))),
            pods=tuple(sorted(names[node])),
            daemon_cpu_millis=_millis(row.get("daemon_cpu", Decimal(0))),
            daemon_memory_mb=_mib(row.get("daemon_memory", Decimal(0))),
        )
        for node, row in sums.items()
    }


def node_info(node: dict[str, Any], foreign: ForeignUsage | None = None) -> NodeInfo:
    meta, spec, status = node["metadata"], node.get("spec", {}), node.get("status", {})
    labels = meta.get("labels", {}) or {}
    capacity = status.get("capacity", {}) or {}
    allocatable = status.get("allocatable", {}) or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions", []) or []
    )
    memory_label = labels.get(GPU_MEMORY_LABEL)
    return NodeInfo(
        name=meta["name"],
        gpu_model=labels.get(GPU_PRODUCT_LABEL, ""),
        gpu_memory_mb=int(memory_label) if memory_label and memory_label.isdigit() else None,
        gpu_capacity=int(parse_quantity(capacity.get(GPU_RESOURCE))),
        gpu_allocatable=int(parse_quantity(allocatable.get(GPU_RESOURCE))),
        cpu_allocatable_millis=int(parse_quantity(allocatable.get("cpu")) * 1000),
        memory_allocatable_mb=int(parse_quantity(allocatable.get("memory")) / 2**20),
        ready=ready,
        cordoned=bool(spec.get("unschedulable")),
        taints=[{k: str(v) for k, v in t.items()} for t in spec.get("taints", []) or []],
        labels=dict(labels),
        foreign=foreign or ForeignUsage(),
        extended=extended_resources(allocatable),
    )


#: Resources every pod has or Karimasu requests itself: never "extended".
_BASIC_RESOURCES = ("cpu", "memory", "pods", "ephemeral-storage", GPU_RESOURCE)


def extended_resources(allocatable: dict[str, Any]) -> dict[str, int]:
    """A node's allocatable extended resources besides GPUs (``rdma/ib``,
    ``nvidia.com/hostdev``, ...), counted; hugepages and zero counts left out.

    >>> extended_resources({"cpu": "8", "rdma/ib": "4", "hugepages-2Mi": "0", "x/y": "0"})
    {'rdma/ib': 4}
    """
    found = {}
    for name, value in allocatable.items():
        if name in _BASIC_RESOURCES or name.startswith("hugepages-"):
            continue
        try:
            count = int(parse_quantity(value))
        except (ArithmeticError, ValueError):
            continue
        if count > 0:
            found[str(name)] = count
    return found


# --- Job + Pods -> AttemptState ------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["type"]: c
        for c in obj.get("status", {}).get("conditions", []) or []
        if c.get("status") == "True"
    }


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses", []) or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return None


def container_started_at(pod: dict[str, Any]) -> datetime | None:
    """When the pod's first container started running (this run, or the run that ended), or
    None before it ever ran. Not ``status.startTime``: that is when the kubelet took the pod,
    before pulling its image."""
    statuses = pod.get("status", {}).get("containerStatuses", []) or []
    starts = []
    for status in statuses:
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            for key in ("running", "terminated"):
                started = (state.get(key) or {}).get("startedAt")
                if started:
                    starts.append(str(started))
    return _time(min(starts)) if starts else None


def _waiting_reason(pod: dict[str, Any]) -> tuple[str, str]:
    """The first waiting container's reason and message (init containers first: a crashing
    init container keeps the pod Pending)."""
    status_ = pod.get("status", {}) or {}
    for status in [
        *(status_.get("initContainerStatuses") or []),
        *(status_.get("containerStatuses") or []),
    ]:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason", "")), str(waiting.get("message", ""))
    return "", ""


def _pod_failure_reason(pod: dict[str, Any]) -> str:
    pod_reason = pod.get("status", {}).get("reason", "")
    if pod_reason == "Evicted":
        return "evicted"
    if pod_reason == "NodeLost" or pod.get("status", {}).get("phase") == "Unknown":
        return "node_lost"
    if "DisruptionTarget" in _true_conditions(pod):
        return "evicted"
    terminated = _terminated(pod) or {}
    if terminated.get("reason") == "OOMKilled":
        return "oom_killed"
    return "error"


def attempt_state(job: dict[str, Any], pods: list[dict[str, Any]]) -> AttemptState | None:
    """Where one attempt stands, or None for a Job without Karimasu's labels."""
    labels = job["metadata"].get("labels", {}) or {}
    if not labels.get(LABEL_JOB, "").isdigit() or not labels.get(LABEL_ATTEMPT, "").isdigit():
        return None
    job_id, attempt = int(labels[LABEL_JOB]), int(labels[LABEL_ATTEMPT])
    status = job.get("status", {}) or {}
    conditions = _true_conditions(job)
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")) if pods else None
    node = (pod or {}).get("spec", {}).get("nodeName", "") or ""
    terminated = _terminated(pod) if pod else None
    common: dict[str, Any] = {
        "job_id": job_id,
        "attempt": attempt,
        "node_name": node,
        "started_at": (container_started_at(pod) if pod else None)
        or _time(status.get("startTime")),
        "exit_code": terminated.get("exitCode") if terminated else None,
        "pod_uids": tuple(
            sorted(
                str(p["metadata"]["uid"])
                for p in pods
                if p["metadata"].get("uid")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            )
        ),
    }

    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        finished = status.get("completionTime") or conditions.get("Complete", {}).get(
            "lastTransitionTime"
        )
        return AttemptState(phase=SUCCEEDED, finished_at=_time(finished), **common)
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed:
        finished = _time(failed.get("lastTransitionTime"))
        if failed.get("reason") == "DeadlineExceeded":
            return AttemptState(
                phase=TIMED_OUT,
                reason="deadline_exceeded",
                message=str(failed.get("message", "")),
                finished_at=finished,
                **common,
            )
        reason = _pod_failure_reason(pod) if pod else "error"
        message = str(failed.get("message", "")) or (terminated or {}).get("message", "")
        return AttemptState(
            phase=FAILED, reason=reason, message=str(message or ""), finished_at=finished, **common
        )
    if pod is None:
        return AttemptState(phase=PENDING, reason="creating", **common)
    completions = int((job.get("spec") or {}).get("completions") or 1)
    if (job.get("spec") or {}).get("completionMode") == "Indexed" and completions > 1:
        return _gang_state(pods, completions, common)
    return _active_pod_state(pod, common)


def _rank(pod: dict[str, Any]) -> int | None:
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(INDEX_LABEL) or (meta.get("labels") or {}).get(
        INDEX_LABEL
    )
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _gang_state(
    pods: list[dict[str, Any]], completions: int, common: dict[str, Any]
) -> AttemptState:
    """An unfinished gang: running only when every rank's pod runs; a rank failed, lost or
    evicted fails it; a rank without a pod while others run is ``gang_incomplete`` (pending:
    reconcile breaks a gang it had seen running); else pending with the first pending
    rank's reason. ``node_name`` is rank 0's, ``pods`` every rank's node."""
    newest: dict[int, dict[str, Any]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")):
        rank = _rank(pod)
        if rank is not None and 0 <= rank < completions:
            newest[rank] = pod
    placed = tuple(
        sorted((rank, str(p.get("spec", {}).get("nodeName") or "")) for rank, p in newest.items())
    )
    ranked: dict[str, Any] = {**common, "node_name": dict(placed).get(0, ""), "pods": placed}
    base = AttemptState(phase=PENDING, **ranked)
    states = {rank: _active_pod_state(pod, ranked) for rank, pod in newest.items()}
    started = [st.started_at for st in states.values() if st.phase == RUNNING and st.started_at]
    for rank, st in sorted(states.items()):
        if st.phase == FAILED or st.reason == "retrying":
            reason = st.reason if st.phase == FAILED else "error"
            message = st.message or f"Rank {rank} of the gang failed."
            return replace(base, phase=FAILED, reason=reason, message=message)
    running = [rank for rank, st in states.items() if st.phase == RUNNING]
    if running and len(newest) < completions:
        # Not yet created (the Job controller creates pods in batches) or gone: reconcile
        # tells them apart, a gang it saw running whole is broken (``gang_incomplete``).
        missing = sorted(set(range(completions)) - set(newest))
        return replace(
            base,
            reason="gang_incomplete",
            message=f"Rank {missing[0]} has no pod while others run.",
        )
    if len(running) == completions:
        # The gang runs once its last rank does.
        return replace(base, phase=RUNNING, started_at=max(started, default=None))
    pending = next((st for _, st in sorted(states.items()) if st.phase == PENDING), None)
    if pending is None:
        return replace(base, reason="creating")
    return replace(base, reason=pending.reason, message=pending.message)


def _explained(waiting: str, message: str) -> tuple[str, str]:
    reason, explain = WAITING_REASONS.get(waiting, ("starting", ""))
    if explain:
        message = f"{explain} ({waiting}: {message})" if message else f"{explain} ({waiting})"
    return reason, message


def _active_pod_state(pod: dict[str, Any], common: dict[str, Any]) -> AttemptState:
    phase = pod.get("status", {}).get("phase", "Pending")
    if phase == "Running":
        waiting, message = _waiting_reason(pod)
        if waiting == "CrashLoopBackOff":  # restarted in place (restartPolicy not Never)
            reason, message = _explained(waiting, message)
            return AttemptState(phase=RUNNING, reason=reason, message=message, **common)
        return AttemptState(phase=RUNNING, **common)
    if phase in ("Failed", "Unknown"):
        reason = _pod_failure_reason(pod)
        if reason in ("node_lost", "evicted"):
            return AttemptState(
                phase=FAILED,
                reason=reason,
                message=str(pod.get("status", {}).get("message", "")),
                **common,
            )
        return AttemptState(phase=PENDING, reason="retrying", **common)
    if phase == "Succeeded":
        return AttemptState(phase=RUNNING, reason="finishing", **common)
    scheduled = next(
        (
            c
            for c in pod.get("status", {}).get("conditions", []) or []
            if c.get("type") == "PodScheduled"
        ),
        None,
    )
    if scheduled and scheduled.get("status") == "False":
        return AttemptState(
            phase=PENDING,
            reason="unschedulable",
            message=str(scheduled.get("message", "")),
            **common,
        )
    waiting, message = _waiting_reason(pod)
    reason, message = _explained(waiting, message)
    return AttemptState(phase=PENDING, reason=reason, message=message, **common)
