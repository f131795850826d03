"""Which pod a GPU process belongs to: `/proc/<pid>/cgroup` -> pod UID -> Karimasu job.

cgroup v1 lines look like `11:devices:/kubepods/burstable/pod<uid>/<container-id>`, cgroup v2
has one line `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/
cri-containerd-<id>.scope` (systemd driver: the UID's dashes become underscores). The pod UID
then resolves to labels through a `PodDirectory` (`karimasu.io/job-id`, `karimasu.io/attempt`).

Design: the agent resolves pod UIDs itself when it has a directory (the Kubernetes API, pods
of its own node, `KubePodDirectory`); without one it reports the pod UID with `foreign=None`
and the portal decides from what it knows about the GPU's allocation. A process in no pod at
all, or in a pod without the Karimasu job label, is foreign use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from nodeagent.readings import NodeReading, ProcessReading

log = logging.getLogger("karimasu.telemetry.cgroups")

LABEL_JOB = "karimasu.io/job-id"  # as scheduler.cluster.mapping (no Django import here)
LABEL_ATTEMPT = "karimasu.io/attempt"

_UID = r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
_POD = re.compile(r"kubepods[^\n]*?pod(" + _UID + r")")


def pod_uid_from_cgroup(text: str) -> str | None:
    """The pod UID in a `/proc/<pid>/cgroup` file (v1 or v2), or None outside kubepods.

    >>> pod_uid_from_cgroup("0::/kubepods.slice/kubepods-besteffort.slice/"
    ...     "kubepods-besteffort-pod1b2c3d4e_0000_4000_8000_00000000abcd.slice/cri-x.scope")
    '1b2c3d4e-0000-4000-8000-00000000abcd'
    >>> pod_uid_from_cgroup(
    ...     "4:memory:/kubepods/burstable/pod1b2c3d4e-0000-4000-8000-00000000abcd/f00")
    '1b2c3d4e-0000-4000-8000-00000000abcd'
    >>> pod_uid_from_cgroup("0::/user.slice/user-1000.slice/session-3.scope") is None
    True
    """
    for line in text.splitlines():
        match = _POD.search(line)
        if match:
            return match.group(1).replace("_", "-").lower()
    return None


class PodDirectory(Protocol):
    def labels(self) -> Mapping[str, Mapping[str, str]]:
        """Pod UID -> labels for the pods of this node (refreshed by the implementation)."""
        ...


class ProcessMapper:
    """Fills `pod_uid`, `job_id`, `attempt` and `foreign` of every process in a reading.

    `proc_root` is `/proc` (in the DaemonSet: the host's, with `hostPID: true`); `directory`
    is optional (see the module docstring).
    """

    def __init__(self, proc_root: str | Path = "/proc", directory: PodDirectory | None = None):
        self.proc_root = Path(proc_root)
        self.directory = directory

    def cgroup(self, pid: int) -> str | None:
        """The cgroup file of `pid`, None when it ended or is not visible (no hostPID)."""
        try:
            return (self.proc_root / str(pid) / "cgroup").read_text(errors="replace")
        except OSError:
            return None

    def annotate(self, reading: NodeReading) -> NodeReading:
        labels: Mapping[str, Mapping[str, str]] | None = None
        if self.directory is not None:
            try:
                labels = self.directory.labels()
            except Exception as exc:
                log.warning("pod directory failed: %s", exc)
        for gpu in reading.gpus:
            for proc in gpu.processes or []:
                self._annotate(proc, labels)
        return reading

    def _annotate(
        self, proc: ProcessReading, labels: Mapping[str, Mapping[str, str]] | None
    ) -> None:
        text = self.cgroup(proc.pid)
        if text is None:
            proc.foreign = None  # cannot tell: the portal decides from the GPU's allocation
            return
        proc.pod_uid = pod_uid_from_cgroup(text)
        if proc.pod_uid is None:
            proc.foreign = True  # a host process, or a container outside Kubernetes
            return
        if labels is None or proc.pod_uid not in labels:
            proc.foreign = None  # a pod we cannot name: the portal decides
            return
        pod_labels = labels[proc.pod_uid]
        proc.job_id = _int(pod_labels.get(LABEL_JOB))
        proc.attempt = _int(pod_labels.get(LABEL_ATTEMPT))
        proc.foreign = proc.job_id is None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class StaticPodDirectory:
    """A fixed map (tests, or a provider function's result)."""

    def __init__(self, provider: Callable[[], Mapping[str, Mapping[str, str]]]):
        self.provider = provider

    def labels(self) -> Mapping[str, Mapping[str, str]]:
        return self.provider()


class KubePodDirectory:
    """Pods of one node from the Kubernetes API (`list pods` with `spec.nodeName=<node>`).

    Needs RBAC `list pods` cluster-wide, which k8s/base/node-agent.yaml does not grant: the
    DaemonSet runs with `--pods none` and the portal resolves pod UIDs. Imported lazily so
    the agent runs without the `kubernetes` package when no directory is wanted.
    """

    def __init__(self, node: str, kubeconfig: str | None = None) -> None:
        from kubernetes import client

        from scheduler.cluster.kube import api_client

        self.core = client.CoreV1Api(api_client(kubeconfig))
        self.node = node

    def pods(self) -> list[Any]:
        pods: list[Any] = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.node}", _request_timeout=5
        ).items
        return pods

    def labels(self) -> dict[str, dict[str, str]]:
        return {p.metadata.uid: dict(p.metadata.labels or {}) for p in self.pods()}
