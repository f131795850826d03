"""What the API server does to every new Pod besides validation: admission and QoS.

Every Pod the emulator stores goes through :func:`admit_new_pod`, whether a client POSTed it
or a controller (Job, DaemonSet) created it, as every Pod passes the admission chain upstream:

- **DefaultTolerationSeconds** (an admission plugin on by default): a Pod that does not
  tolerate ``node.kubernetes.io/not-ready:NoExecute`` / ``node.kubernetes.io/unreachable:
  NoExecute`` gets a toleration of each with ``tolerationSeconds: 300``, so it is evicted five
  minutes after its node goes NotReady or unreachable (the taint eviction controller in
  :mod:`.controller`).
- ``status.qosClass``: computed exactly like the kubelet's ``GetPodQOS`` (see :func:`qos_class`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from . import resources as r
from .quantities import parse_quantity

Obj = dict[str, Any]

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300
_QOS_RESOURCES = ("cpu", "memory")


def _quantity(value: Any) -> Fraction:
    try:
        return parse_quantity(value)
    except (TypeError, ValueError):
        return Fraction(0)


def qos_class(spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, as the kubelet computes it.

    Only CPU and memory count, over init and app containers. BestEffort: no container sets a
    (non-zero) CPU or memory request or limit. Guaranteed: every container has CPU and memory
    limits and the summed requests equal the summed limits. Anything else is Burstable. (A
    request left unset where a limit is set was defaulted to the limit on create.)

    >>> qos_class({"containers": [{"name": "a"}]})
    'BestEffort'
    >>> qos_class({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"},
    ...                                         "requests": {"cpu": "1", "memory": "1Gi"}}}]})
    'Guaranteed'
    >>> qos_class({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})
    'Burstable'
    """
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        resources = container.get("resources") or {}
        for name, raw in (resources.get("requests") or {}).items():
            value = _quantity(raw)
            if name in _QOS_RESOURCES and value > 0:
                requests[name] = requests.get(name, Fraction(0)) + value
        found = set()
        for name, raw in (resources.get("limits") or {}).items():
            value = _quantity(raw)
            if name in _QOS_RESOURCES and value > 0:
                found.add(name)
                limits[name] = limits.get(name, Fraction(0)) + value
        if not found >= set(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    same = all(limits.get(name) == value for name, value in requests.items())
    if guaranteed and same and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def add_default_tolerations(spec: Obj) -> None:
    """DefaultTolerationSeconds: 300 s for not-ready and unreachable, unless already tolerated."""
    tolerations = spec.setdefault("tolerations", [])
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        covered = any(
            t.get("effect") in (None, "", "NoExecute")
            and (t.get("key") == key or (t.get("operator") == "Exists" and not t.get("key")))
            for t in tolerations
        )
        if not covered:
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )


def admit_new_pod(pod: Obj) -> Obj:
    """Apply admission to a new Pod (in place) and set its initial status; returns it."""
    spec = pod.setdefault("spec", {})
    if isinstance(spec, dict):
        add_default_tolerations(spec)
        qos = qos_class(spec)
    else:
        qos = "BestEffort"
    pod["status"] = {"phase": "Pending", "qosClass": qos}
    return pod


def create_owned_pod(
    store: Any,
    recorder: Any,
    owner: Obj,
    owner_kind: tuple[str, str],
    pod_meta: Obj,
    spec: Obj,
    component: str,
) -> Obj:
    """Create the Pod a controller makes for ``owner`` (``owner_kind``: its apiVersion and
    kind): the controller owner reference, admission (``admit_new_pod``), and the owner's
    ``SuccessfulCreate`` event, as the Job and DaemonSet controllers do upstream."""
    api_version, kind = owner_kind
    reference = {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    pod = {"metadata": {**pod_meta, "ownerReferences": [reference]}, "spec": spec}
    created: Obj = store.create(r.PODS, admit_new_pod(pod))
    recorder.record(
        owner,
        "SuccessfulCreate",
        f"Created pod: {created['metadata']['name']}",
        component=component,
    )
    return created
