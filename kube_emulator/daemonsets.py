"""A minimal ``apps/v1`` DaemonSet controller: one Pod per eligible node.

Per DaemonSet (``spec.selector``, ``spec.template``; update strategies are not modelled):

- a node is eligible when the template's nodeSelector and required node affinity match it and
  it has no NoSchedule/NoExecute taint the Pod does not tolerate (the controller's own
  tolerations included);
- on each eligible node without a live Pod of the DaemonSet it creates ``<ds>-<5 chars>``,
  owned by the DaemonSet, pinned with the required node affinity ``matchFields
  metadata.name`` (the default scheduler binds it, so it is accounted like any Pod), with the
  tolerations the controller adds upstream: ``not-ready``/``unreachable`` NoExecute without
  ``tolerationSeconds`` (never evicted), the pressure conditions and ``unschedulable``;
- a Pod that failed or whose node is no longer eligible is deleted, gracefully as through the
  API (and replaced where due, once the old one is gone, as upstream);
- a DaemonSet being deleted (Foreground) is left alone: no new Pods, no status changes;
- ``status`` counts desired, current, misscheduled, ready and available Pods.

The garbage collector (``jobs.collect_garbage``) deletes the Pods of a deleted DaemonSet
(apps/v1 deletes with Background propagation by default: ``deletion.OWNERS``).
"""

from __future__ import annotations

import copy
from typing import Any

from . import resources as r
from .admission import NOT_READY_TAINT, UNREACHABLE_TAINT, create_owned_pod
from .deletion import delete_object
from .errors import FieldCause
from .events import EventRecorder
from .scheduling import is_terminal, matches_affinity, tolerates
from .store import Store
from .validation import _default_pod_spec, pod_spec_errors, random_suffix

Obj = dict[str, Any]

#: What the DaemonSet controller adds to its Pods (util.AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute"},
    {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def prepare_daemonset(ds: Obj) -> list[FieldCause]:
    """Defaults and checks of a new DaemonSet (called from ``validation.prepare_new``)."""
    spec = ds.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        return [FieldCause("spec.template", "Required value", "FieldValueRequired")]
    causes: list[FieldCause] = []
    template = spec["template"]
    labels = (template.setdefault("metadata", {}) or {}).get("labels") or {}
    selector = spec.get("selector")
    match = (selector or {}).get("matchLabels") if isinstance(selector, dict) else None
    if not match:
        causes.append(FieldCause("spec.selector", "Required value", "FieldValueRequired"))
    elif any(labels.get(k) != v for k, v in match.items()):
        causes.append(
            FieldCause(
                "spec.template.metadata.labels",
                "Invalid value: `selector` does not match template `labels`",
            )
        )
    spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    spec.setdefault("revisionHistoryLimit", 10)
    pod_spec = template.get("spec")
    if isinstance(pod_spec, dict):
        _default_pod_spec(pod_spec, restart_default="Always")
        if pod_spec.get("restartPolicy") != "Always":
            causes.append(
                FieldCause(
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{pod_spec.get("restartPolicy")}": supported values: '
                    '"Always"',
                    "FieldValueNotSupported",
                )
            )
    causes += pod_spec_errors(pod_spec, "spec.template.spec")
    ds["status"] = {  # the fields a client's model requires
        "currentNumberScheduled": 0,
        "desiredNumberScheduled": 0,
        "numberMisscheduled": 0,
        "numberReady": 0,
    }
    return causes


def _owned(ds: Obj, pods: list[Obj]) -> list[Obj]:
    uid = ds["metadata"]["uid"]
    return [
        p
        for p in pods
        if any(
            o.get("uid") == uid and o.get("controller")
            for o in p["metadata"].get("ownerReferences") or []
        )
    ]


def _pod_node(pod: Obj) -> str:
    """The node a daemon Pod is for: bound, or named in its matchFields affinity."""
    if pod["spec"].get("nodeName"):
        return str(pod["spec"]["nodeName"])
    required = ((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return ""


def _tolerations(template_spec: Obj) -> list[Obj]:
    tolerations = [dict(t) for t in template_spec.get("tolerations") or []]
    for extra in DAEMON_TOLERATIONS:
        if not any(
            t.get("key") == extra["key"] and t.get("effect") == extra["effect"] for t in tolerations
        ):
            tolerations.append(dict(extra))
    return tolerations


def should_run(template_spec: Obj, node: Obj, effects: tuple[str, ...]) -> bool:
    """Whether a daemon Pod of ``template_spec`` belongs on ``node``: a new one where it
    tolerates the NoSchedule and NoExecute taints, an existing one (``effects`` NoExecute
    only) as long as it is not to be evicted, as upstream's ``NodeShouldRunDaemonPod``."""
    if not matches_affinity(template_spec, node):
        return False
    tolerations = _tolerations(template_spec)
    return all(
        tolerates(tolerations, taint)
        for taint in (node.get("spec") or {}).get("taints") or []
        if taint.get("effect") in effects
    )


class DaemonSetController:
    """Reconciles every DaemonSet with its Pods; called once per controller step."""

    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self.store = store
        self.recorder = recorder

    def sync(self, ds: Obj, nodes: list[Obj], pods: list[Obj]) -> None:
        if ds["metadata"].get("deletionTimestamp"):
            return  # being deleted: no new Pods, no status changes (as upstream)
        spec = ds["spec"]
        template_spec = spec["template"].get("spec") or {}
        wanted = {
            n["metadata"]["name"]
            for n in nodes
            if should_run(template_spec, n, ("NoSchedule", "NoExecute"))
        }
        keep = {
            n["metadata"]["name"] for n in nodes if should_run(template_spec, n, ("NoExecute",))
        }
        live, leaving = self._sort_pods(_owned(ds, pods), keep)
        for node in sorted(wanted - set(live) - leaving):
            live[node] = [self._create_pod(ds, node)]
        current = [p for node_pods in live.values() for p in node_pods]
        ready = sum(
            1
            for p in current
            if p["status"].get("phase") == "Running"
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in p["status"].get("conditions") or []
            )
        )
        status = {
            "currentNumberScheduled": len(live),
            "desiredNumberScheduled": len(wanted | set(live)),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": len(live),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        if ready < len(wanted):
            status["numberUnavailable"] = len(wanted) - ready
        if ds.get("status") != status:
            ds["status"] = status
            self.store.replace(r.DAEMONSETS, ds)

    def _sort_pods(self, owned: list[Obj], keep: set[str]) -> tuple[dict[str, list[Obj]], set[str]]:
        """The live Pods by node, and the nodes where one is going: a failed Pod or one whose
        node it should leave is deleted; upstream replaces it once it is gone."""
        live: dict[str, list[Obj]] = {}
        leaving: set[str] = set()
        for pod in owned:
            node, meta = _pod_node(pod), pod["metadata"]
            if meta.get("deletionTimestamp"):
                leaving.add(node)
            elif is_terminal(pod) or node not in keep:
                delete_object(self.store, r.PODS, meta["namespace"], meta["name"], {})
                leaving.add(node)
            else:
                live.setdefault(node, []).append(pod)
        return live, leaving

    def _create_pod(self, ds: Obj, node: str) -> Obj:
        meta, template = ds["metadata"], ds["spec"]["template"]
        spec = copy.deepcopy(template.get("spec") or {})
        spec["tolerations"] = _tolerations(spec)
        affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
        }
        template_meta = template.get("metadata") or {}
        pod_meta = {
            "name": f"{meta['name']}-{random_suffix()}",
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": {
                **(template_meta.get("labels") or {}),
                "controller-revision-hash": "1",
                "pod-template-generation": str(meta.get("generation", 1)),
            },
            "annotations": dict(template_meta.get("annotations") or {}),
        }
        return create_owned_pod(
            self.store,
            self.recorder,
            ds,
            ("apps/v1", "DaemonSet"),
            pod_meta,
            spec,
            "daemonset-controller",
        )
