"""The scheduler's filters: which node a pending Pod may bind to, and why not.

Pure functions over plain objects. The filters run in the real scheduler's order
(NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodeResourcesFit) and stop at the
first failing one per node, then the incoming pod's required pod anti-affinity
(InterPodAffinity, that part only), so the FailedScheduling message reads like upstream's::

    0/4 nodes are available: 1 node(s) were unschedulable, 3 Insufficient nvidia.com/gpu.
    preemption: 0/4 nodes are available: ...

Among the nodes that fit, the one with the fewest free GPUs left wins (bin packing, then name),
which keeps whole servers free for large jobs; the real scheduler scores differently but any
fitting node is a legal answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from .quantities import parse_quantity

Obj = dict[str, Any]
GPU = "nvidia.com/gpu"
_PREEMPTABLE = ("Insufficient", "Too many pods")


def is_terminal(pod: Obj) -> bool:
    """True once a Pod has Succeeded or Failed (it no longer holds resources)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _ready(node: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def is_scheduled(pod: Obj) -> bool:
    """True when the Pod carries condition PodScheduled=True."""
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _container_requests(container: Obj) -> dict[str, Fraction]:
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: parse_quantity(value) for name, value in merged.items()}


def pod_requests(pod: Obj) -> dict[str, Fraction]:
    """What a Pod holds on its node, as the scheduler counts it: the app containers' summed
    requests (limits stand in where requests are unset) plus running sidecars (init
    containers with ``restartPolicy: Always``), or the largest init container's if more,
    plus ``spec.overhead``.

    >>> pod_requests({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}],
    ...     "initContainers": [{"resources": {"requests": {"cpu": "3"}}}],
    ...     "overhead": {"cpu": "250m"}}})["cpu"]
    Fraction(13, 4)
    """
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    peak: dict[str, Fraction] = {}
    sidecars: dict[str, Fraction] = {}
    for container in spec.get("initContainers") or []:
        wanted = _container_requests(container)
        for name, amount in wanted.items():
            peak[name] = max(peak.get(name, Fraction(0)), sidecars.get(name, Fraction(0)) + amount)
        if container.get("restartPolicy") == "Always":
            for name, amount in wanted.items():
                sidecars[name] = sidecars.get(name, Fraction(0)) + amount
    for container in spec.get("containers") or []:
        for name, amount in _container_requests(container).items():
            total[name] = total.get(name, Fraction(0)) + amount
    for name, amount in sidecars.items():
        total[name] = total.get(name, Fraction(0)) + amount
    for name, amount in peak.items():
        total[name] = max(total.get(name, Fraction(0)), amount)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Fraction(0)) + parse_quantity(value)
    return total


def node_usage(node_name: str, pods: Iterable[Obj]) -> dict[str, Fraction]:
    """Requests held on ``node_name`` by bound, non-terminal pods, plus their count as ``pods``.

    A Pod holds resources once bound by the scheduler or admitted by the kubelet (condition
    PodScheduled=True); one created with ``spec.nodeName`` but not yet admitted does not.
    """
    used: dict[str, Fraction] = {}
    for pod in pods:
        if (
            (pod.get("spec") or {}).get("nodeName") == node_name
            and not is_terminal(pod)
            and is_scheduled(pod)
        ):
            for name, amount in pod_requests(pod).items():
                used[name] = used.get(name, Fraction(0)) + amount
            used["pods"] = used.get("pods", Fraction(0)) + 1
    return used


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    """True when one toleration matches ``taint`` (key, operator, value, effect)."""
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        operator = toleration.get("operator", "Equal")
        key = toleration.get("key", "")
        if operator == "Exists" and key in ("", taint.get("key")):
            return True
        if key == taint.get("key") and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression_holds(expression: Obj, labels: dict[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator", "In")
    values = expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt") and key in labels and values:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def matches_affinity(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector and required node affinity (terms ORed, expressions ANDed)."""
    labels = node["metadata"].get("labels") or {}
    selector = pod_spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(
        all(_expression_holds(e, labels) for e in term.get("matchExpressions") or [])
        and all(_expression_holds(e, fields) for e in term.get("matchFields") or [])
        for term in terms
        if term.get("matchExpressions") or term.get("matchFields")
    )


def filter_reasons(pod: Obj, node: Obj, used: dict[str, Fraction]) -> list[str]:
    """Why ``pod`` cannot bind to ``node`` given ``used`` resources; [] means it fits."""
    spec = pod.get("spec") or {}
    node_spec = node.get("spec") or {}
    if node_spec.get("unschedulable") and not tolerates(
        spec.get("tolerations") or [],
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
    ):
        return ["node(s) were unschedulable"]
    for taint in node_spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
            spec.get("tolerations") or [], taint
        ):
            return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
    if not _ready(node) and not any(
        t.get("key", "").startswith("node.kubernetes.io/") for t in node_spec.get("taints") or []
    ):  # what the node lifecycle controller's not-ready taint would say
        return ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    if not matches_affinity(spec, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    allocatable = {
        k: parse_quantity(v)
        for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()
    }
    reasons = []
    if used.get("pods", 0) + 1 > allocatable.get("pods", Fraction(110)):
        reasons.append("Too many pods")
    for name, request in sorted(pod_requests(pod).items()):
        if request and used.get(name, 0) + request > allocatable.get(name, Fraction(0)):
            reasons.append(f"Insufficient {name}")
    return reasons


def choose_node(
    pod: Obj,
    nodes: list[Obj],
    pods: list[Obj],
    usage: dict[str, dict[str, Fraction]] | None = None,
) -> tuple[str | None, str]:
    """Pick a node for ``pod``: (node name, "") or (None, the FailedScheduling message).

    ``usage`` (node name -> :func:`node_usage`) spares recounting every pod per node.
    """
    fitting: list[tuple[Fraction, str]] = []
    failures: Counter[str] = Counter()
    helpful = 0  # failing nodes where evicting pods could make room
    shunned = anti_affinity_domains(pod, nodes, pods)
    for node in nodes:
        name = node["metadata"]["name"]
        used = usage[name] if usage is not None else node_usage(name, pods)
        reasons = filter_reasons(pod, node, used)
        labels = node["metadata"].get("labels") or {}
        if not reasons and any(labels.get(key) in values for key, values in shunned.items()):
            reasons = ["node(s) didn't match pod anti-affinity rules"]
        if reasons:
            failures.update(reasons)
            helpful += all(reason.startswith(_PREEMPTABLE) for reason in reasons)
            continue
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        free_gpus = parse_quantity(allocatable.get(GPU, 0)) - used.get(GPU, 0)
        fitting.append((free_gpus - pod_requests(pod).get(GPU, 0), name))
    if fitting:
        return min(fitting)[1], ""
    return None, unschedulable_message(len(nodes), failures, helpful)


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions) against ``labels``."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_holds(e, labels) for e in selector.get("matchExpressions") or [])


def anti_affinity_domains(pod: Obj, nodes: list[Obj], pods: list[Obj]) -> dict[str, set[str]]:
    """Required pod anti-affinity (InterPodAffinity): topology key -> the values of nodes
    that run a bound, unfinished pod of the same namespace the term's selector matches; a
    node with such a value is excluded. (Pod affinity and the other pods' own anti-affinity
    are not modelled.)"""
    terms = (((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or []
    if not terms:
        return {}
    by_name = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes}
    namespace = pod["metadata"].get("namespace")
    domains: dict[str, set[str]] = {}
    for term in terms:
        key = term.get("topologyKey", "")
        for other in pods:
            bound = (other.get("spec") or {}).get("nodeName")
            meta = other["metadata"]
            if (
                not bound
                or is_terminal(other)
                or meta.get("namespace") != namespace
                or meta.get("name") == pod["metadata"].get("name")
                or not _selects(term.get("labelSelector") or {}, meta.get("labels") or {})
            ):
                continue
            value = by_name.get(bound, {}).get(key)
            if value is not None:
                domains.setdefault(key, set()).add(value)
    return domains


def unschedulable_message(node_count: int, failures: Counter[str], helpful: int) -> str:
    """Upstream's FailedScheduling message.

    ``failures`` maps each reason to the number of nodes it held on; ``helpful`` is how many
    nodes failed only for lack of resources (where preemption could in principle help).
    """
    if not node_count:
        return "no nodes available to schedule pods"
    summary = ", ".join(sorted(f"{count} {reason}" for reason, count in failures.items()))
    parts = []
    if helpful:
        parts.append(f"{helpful} No preemption victims found for incoming pod")
    if node_count - helpful:
        parts.append(f"{node_count - helpful} Preemption is not helpful for scheduling")
    preemption = ", ".join(sorted(parts))
    return (
        f"0/{node_count} nodes are available: {summary}. "
        f"preemption: 0/{node_count} nodes are available: {preemption}."
    )
