"""Emulated nodes (and namespaces) from a YAML file.

File format (every key but ``nodes[].name`` is optional)::

    namespaces: [karimasu-jobs]      # created at start, besides default, kube-system,
                                     # kube-public and kube-node-lease
    defaults:                        # merged under every node entry
      gpus: 2                        # nvidia.com/gpu capacity and allocatable
      gpu_product: Tesla-V100-SXM2-16GB   # label nvidia.com/gpu.product
      gpu_memory_mib: 16384               # label nvidia.com/gpu.memory
      cpu: "32"                      # capacity/allocatable cpu (a quantity)
      memory: 256Gi                  # capacity/allocatable memory (a quantity)
    nodes:
      - name: tesla-01               # also the kubernetes.io/hostname label
        labels: {zone: rack-a}       # extra labels
        taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
        unschedulable: false         # start cordoned
        ready: true                  # start NotReady with false
        allocatable: {cpu: "30"}     # overrides of allocatable (default: = capacity)
        dra: true                    # the NVIDIA DRA driver publishes this node's GPUs as a
                                     # resource.k8s.io/v1 ResourceSlice (default false; the
                                     # default file sets it for every node): see dra.py
    daemonsets:                      # apps/v1 DaemonSets: one Pod per eligible node
      - name: kube-proxy
        namespace: kube-system       # default kube-system (created if missing)
        image: registry.k8s.io/kube-proxy:v1.33.0
        requests: {cpu: 100m, memory: 128Mi}   # limits: {...} too; extended resources
                                               # (with a "/") get limit = request
        node_selector: {nvidia.com/gpu.present: "true"}
        tolerations: [{operator: Exists}]
        duration: inf                # karimasu.io/sim-duration-seconds (default: runs forever)
    pods:                            # Pods bound to a node at start, not made by Karimasu
      - name: notebook-0
        namespace: research          # default "default" (created if missing)
        node: tesla-04
        image: jupyter/base-notebook:2024-01
        requests: {nvidia.com/gpu: 1, cpu: "4", memory: 16Gi}
        labels: {app: notebook}
        annotations: {karimasu.io/gpu-indices: "1"}   # where the simulated node agent puts it
        duration: inf

A node with ``gpus: 0`` gets no GPU labels. GPU feature discovery labels follow NVIDIA's
(``nvidia.com/gpu.product``, ``nvidia.com/gpu.memory``, ``nvidia.com/gpu.count``,
``nvidia.com/gpu.present``). The default file is ``nodes.default.yaml`` next to this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_NODES_FILE = Path(__file__).with_name("nodes.default.yaml")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
GPU = "nvidia.com/gpu"
KUBELET_VERSION = "v1.33.0"


class NodesFileError(ValueError):
    """The nodes file is unreadable or does not follow the documented format."""


@dataclass(frozen=True)
class ClusterSpec:
    """What a nodes file describes: Node objects and namespace names to create."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    daemonsets: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    #: Names of the nodes whose GPUs the emulated NVIDIA DRA driver publishes (``dra: true``).
    dra_nodes: list[str] = field(default_factory=list)


def load_cluster_spec(path: str | Path | None = None) -> ClusterSpec:
    """Read a nodes file (the default one when ``path`` is None); raises NodesFileError."""
    source = Path(path) if path is not None else DEFAULT_NODES_FILE
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise NodesFileError(f"cannot read nodes file {source}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise NodesFileError(f"{source}: expected a mapping with a 'nodes' list")
    defaults = data.get("defaults") or {}
    names: set[str] = set()
    nodes = []
    dra_nodes = []
    for index, entry in enumerate(data["nodes"]):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise NodesFileError(f"{source}: nodes[{index}] needs a name")
        if entry["name"] in names:
            raise NodesFileError(f"{source}: node {entry['name']!r} appears twice")
        names.add(entry["name"])
        merged = {**defaults, **entry}
        if not isinstance(merged.get("dra", False), bool):
            raise NodesFileError(f"{source}: nodes[{index}].dra must be true or false")
        if merged.get("dra"):
            dra_nodes.append(str(entry["name"]))
        nodes.append(node_object(merged, index))
    namespaces = [str(ns) for ns in data.get("namespaces") or []]
    daemonsets = [
        _workload(entry, source, f"daemonsets[{i}]", "kube-system", daemon=True)
        for i, entry in enumerate(data.get("daemonsets") or [])
    ]
    pods = [
        _workload(entry, source, f"pods[{i}]", "default", daemon=False)
        for i, entry in enumerate(data.get("pods") or [])
    ]
    for i, pod in enumerate(pods):
        if pod["spec"]["nodeName"] not in names:
            raise NodesFileError(f"{source}: pods[{i}] names an unknown node")
    for obj in (*daemonsets, *pods):
        if obj["metadata"]["namespace"] not in namespaces:
            namespaces.append(obj["metadata"]["namespace"])
    return ClusterSpec(nodes, namespaces, daemonsets, pods, dra_nodes)


def _workload(
    entry: Any, source: Path, where: str, namespace: str, *, daemon: bool
) -> dict[str, Any]:
    """A DaemonSet or a bound Pod (not yet defaulted) from a ``daemonsets``/``pods`` entry."""
    if not isinstance(entry, dict) or not entry.get("name"):
        raise NodesFileError(f"{source}: {where} needs a name")
    if not daemon and not entry.get("node"):
        raise NodesFileError(f"{source}: {where} needs a node")
    name = str(entry["name"])
    requests = {str(k): str(v) for k, v in (entry.get("requests") or {}).items()}
    limits = {str(k): str(v) for k, v in (entry.get("limits") or {}).items()}
    limits |= {k: v for k, v in requests.items() if "/" in k and k not in limits}
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": str(entry.get("image", "registry.k8s.io/pause:3.10")),
                "resources": resources,
            }
        ],
    }
    if entry.get("tolerations"):
        spec["tolerations"] = [dict(t) for t in entry["tolerations"]]
    if entry.get("node_selector"):
        spec["nodeSelector"] = {str(k): str(v) for k, v in entry["node_selector"].items()}
    labels = {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in (entry.get("annotations") or {}).items()}
    annotations["karimasu.io/sim-duration-seconds"] = str(entry.get("duration", "inf"))
    namespace = str(entry.get("namespace", namespace))
    if not daemon:
        spec["nodeName"] = str(entry["node"])
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": spec,
        }
    labels = labels or {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": annotations},
                "spec": spec,
            },
        },
    }


def node_object(entry: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """Build a Node object (as the kubelet would register it) from one file entry."""
    name = str(entry["name"])
    gpus = int(entry.get("gpus", 0))
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    }
    if gpus:
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.product": str(entry.get("gpu_product", "Tesla-V100-SXM2-16GB")),
            "nvidia.com/gpu.memory": str(entry.get("gpu_memory_mib", 16384)),
        }
    labels |= {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
    capacity = {
        "cpu": str(entry.get("cpu", "32")),
        "memory": str(entry.get("memory", "256Gi")),
        "pods": "110",
        "ephemeral-storage": "1Ti",
    }
    if gpus:
        capacity[GPU] = str(gpus)
    allocatable = {**capacity, **{k: str(v) for k, v in (entry.get("allocatable") or {}).items()}}
    spec: dict[str, Any] = {}
    if entry.get("unschedulable"):
        spec["unschedulable"] = True
    if entry.get("taints"):
        spec["taints"] = [dict(t) for t in entry["taints"]]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [ready_condition(bool(entry.get("ready", True)), "")],
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{index + 11}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": f"boot-{name}",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "6.1.0-emulated",
                "kubeProxyVersion": KUBELET_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "machineID": f"machine-{name}",
                "operatingSystem": "linux",
                "osImage": "Karimasu emulated node",
                "systemUUID": f"uuid-{name}",
            },
        },
    }


def ready_condition(ready: bool, now_rfc3339: str, *, status: str = "Unknown") -> dict[str, Any]:
    """The node's Ready condition: True (KubeletReady), else ``status``: Unknown
    (NodeStatusUnknown, the kubelet stopped answering) or False (KubeletNotReady)."""
    if ready:
        status, reason, message = "True", "KubeletReady", "kubelet is posting ready status"
    elif status == "False":
        reason, message = "KubeletNotReady", "container runtime network not ready"
    else:
        status, reason, message = (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
    condition = {"type": "Ready", "status": status, "reason": reason, "message": message}
    if now_rfc3339:
        condition["lastHeartbeatTime"] = now_rfc3339
        condition["lastTransitionTime"] = now_rfc3339
    return condition


def namespace_object(name: str) -> dict[str, Any]:
    """A Namespace object as the API server stores it."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
