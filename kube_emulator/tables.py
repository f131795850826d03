"""Server-side printing: the ``Table`` answers ``kubectl get`` asks for.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io, ...`` and prints the
columns the server chooses; without them it can only show NAME and AGE. The columns follow
upstream's printers (``pkg/printers/internalversion``) for the kinds the emulator serves;
priority-1 columns are the ones ``-o wide`` adds.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

from . import resources as r
from .clock import parse_rfc3339
from .resources import ResourceType

Obj = dict[str, Any]


class Condition(TypedDict, total=False):
    """The fields of a ``status.conditions`` item that the printers read."""

    type: str
    status: str


_NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0}


def _col(name: str, type_: str = "string", priority: int = 0) -> Obj:
    return {"name": name, "type": type_, "format": "", "priority": priority}


COLUMNS: dict[str, list[Obj]] = {
    "pods": [
        _NAME,
        _col("Ready"),
        _col("Status"),
        _col("Restarts", "string"),
        _col("Age"),
        _col("IP", priority=1),
        _col("Node", priority=1),
        _col("Nominated Node", priority=1),
        _col("Readiness Gates", priority=1),
    ],
    "jobs": [
        _NAME,
        _col("Status"),
        _col("Completions"),
        _col("Duration"),
        _col("Age"),
        _col("Containers", priority=1),
        _col("Images", priority=1),
        _col("Selector", priority=1),
    ],
    "nodes": [
        _NAME,
        _col("Status"),
        _col("Roles"),
        _col("Age"),
        _col("Version"),
        _col("Internal-IP", priority=1),
        _col("External-IP", priority=1),
        _col("OS-Image", priority=1),
        _col("Kernel-Version", priority=1),
        _col("Container-Runtime", priority=1),
    ],
    "namespaces": [_NAME, _col("Status"), _col("Age")],
    "services": [
        _NAME,
        _col("Type"),
        _col("Cluster-IP"),
        _col("External-IP"),
        _col("Port(s)"),
        _col("Age"),
        _col("Selector", priority=1),
    ],
    "daemonsets": [
        _NAME,
        _col("Desired", "integer"),
        _col("Current", "integer"),
        _col("Ready", "integer"),
        _col("Up-to-date", "integer"),
        _col("Available", "integer"),
        _col("Node Selector"),
        _col("Age"),
        _col("Containers", priority=1),
        _col("Images", priority=1),
        _col("Selector", priority=1),
    ],
    # kubectl's columns for the DRA kinds (upstream prints only what these show).
    "deviceclasses": [_NAME, _col("Age")],
    "resourceslices": [
        _NAME,
        _col("Node"),
        _col("Driver"),
        _col("Pool"),
        _col("Age"),
    ],
    "resourceclaims": [_NAME, _col("State"), _col("Age")],
    "events": [
        _col("Last Seen"),
        _col("Type"),
        _col("Reason"),
        _col("Object"),
        _col("Message"),
    ],
}


def human_duration(seconds: float) -> str:
    """kubectl's short durations: ``45s``, ``3m12s``, ``25m``, ``5h3m``, ``30h``, ``3d4h``."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d"


def _age(stamp: str | None, now: float) -> str:
    return human_duration(now - parse_rfc3339(stamp)) if stamp else "<unknown>"


def _condition(obj: Obj, type_: str) -> str | None:
    conditions = cast(list[Condition], (obj.get("status") or {}).get("conditions") or [])
    for condition in conditions:
        if condition.get("type") == type_:
            return condition.get("status")
    return None


def _pod_cells(pod: Obj, now: float) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in statuses:
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        str(restarts),
        _age(pod["metadata"].get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _job_cells(job: Obj, now: float) -> list[Any]:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    if job["metadata"].get("deletionTimestamp"):
        state = "Terminating"
    elif _condition(job, "Complete") == "True":
        state = "Complete"
    elif _condition(job, "Failed") == "True":
        state = "Failed"
    elif _condition(job, "Suspended") == "True":
        state = "Suspended"
    elif _condition(job, "FailureTarget") == "True":
        state = "FailureTarget"
    else:
        state = "Running"
    duration = ""
    if status.get("startTime"):
        end = parse_rfc3339(status["completionTime"]) if status.get("completionTime") else now
        duration = human_duration(end - parse_rfc3339(status["startTime"]))
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    return [
        job["metadata"]["name"],
        state,
        f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}",
        duration,
        _age(job["metadata"].get("creationTimestamp"), now),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
    ]


def _node_cells(node: Obj, now: float) -> list[Any]:
    ready = _condition(node, "Ready")
    state = {"True": "Ready", "False": "NotReady"}.get(ready or "", "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(
        k.removeprefix("node-role.kubernetes.io/")
        for k in labels
        if k.startswith("node-role.kubernetes.io/")
    )
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        _age(node["metadata"].get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _event_cells(event: Obj, now: float) -> list[Any]:
    involved = event.get("involvedObject") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event["metadata"].get("creationTimestamp"))
    )
    return [
        _age(last, now),
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        str(event.get("message", "")).strip(),
    ]


def _namespace_cells(namespace: Obj, now: float) -> list[Any]:
    return [
        namespace["metadata"]["name"],
        (namespace.get("status") or {}).get("phase", ""),
        _age(namespace["metadata"].get("creationTimestamp"), now),
    ]


def _daemonset_cells(ds: Obj, now: float) -> list[Any]:
    status = ds.get("status") or {}
    template = (ds.get("spec") or {}).get("template") or {}
    pod_spec = template.get("spec") or {}
    containers = pod_spec.get("containers") or []
    selector = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    node_selector = pod_spec.get("nodeSelector") or {}
    return [
        ds["metadata"]["name"],
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        ",".join(f"{k}={v}" for k, v in node_selector.items()) or "<none>",
        _age(ds["metadata"].get("creationTimestamp"), now),
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
        ",".join(f"{k}={v}" for k, v in selector.items()) or "<none>",
    ]


def _deviceclass_cells(dc: Obj, now: float) -> list[Any]:
    return [dc["metadata"]["name"], _age(dc["metadata"].get("creationTimestamp"), now)]


def _resourceslice_cells(rs: Obj, now: float) -> list[Any]:
    spec = rs.get("spec") or {}
    return [
        rs["metadata"]["name"],
        spec.get("nodeName") or "<none>",
        spec.get("driver", ""),
        (spec.get("pool") or {}).get("name", ""),
        _age(rs["metadata"].get("creationTimestamp"), now),
    ]


def _resourceclaim_cells(claim: Obj, now: float) -> list[Any]:
    status = claim.get("status") or {}
    if claim["metadata"].get("deletionTimestamp"):
        state = "deleted"
    elif status.get("allocation"):
        state = "allocated,reserved" if status.get("reservedFor") else "allocated"
    else:
        state = "pending"
    return [claim["metadata"]["name"], state, _age(claim["metadata"].get("creationTimestamp"), now)]


def _service_cells(svc: Obj, now: float) -> list[Any]:
    spec = svc.get("spec") or {}
    ports = ",".join(
        f"{p.get('port', '')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []
    )
    selector = spec.get("selector") or {}
    return [
        svc["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports or "<none>",
        _age(svc["metadata"].get("creationTimestamp"), now),
        ",".join(f"{k}={v}" for k, v in selector.items()) or "<none>",
    ]


_CELLS = {
    "deviceclasses": _deviceclass_cells,
    "resourceslices": _resourceslice_cells,
    "resourceclaims": _resourceclaim_cells,
    "pods": _pod_cells,
    "jobs": _job_cells,
    "nodes": _node_cells,
    "namespaces": _namespace_cells,
    "events": _event_cells,
    "daemonsets": _daemonset_cells,
    "services": _service_cells,
}


def _row(rtype: ResourceType, obj: Obj, now: float, include: str) -> Obj:
    row: Obj = {"cells": _CELLS[rtype.plural](obj, now)}
    if include == "Object":
        row["object"] = {"kind": rtype.kind, "apiVersion": rtype.api_version, **obj}
    elif include != "None":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {},
        }
    return row


def to_table(rtype: ResourceType, payload: Obj, now: float, include: str | None) -> Obj:
    """A list (``items``) or one object as a ``meta.k8s.io/v1`` Table."""
    include = include or "PartialObjectMetadata"
    if payload.get("kind") == rtype.list_kind:
        rows = [_row(rtype, item, now, include) for item in payload["items"]]
        meta = payload.get("metadata") or {}
    else:
        rows = [_row(rtype, payload, now, include)]
        meta = {"resourceVersion": (payload.get("metadata") or {}).get("resourceVersion", "")}
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [{**c, "description": c["name"]} for c in COLUMNS[rtype.plural]],
        "rows": rows,
    }


def wants_table(accept: str | None) -> bool:
    """True when the first range the emulator can serve is ``as=Table`` (meta.k8s.io)."""
    for part in (accept or "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        values = dict(p.split("=", 1) for p in params if "=" in p)
        if values.get("as") == "Table" and values.get("g") == "meta.k8s.io":
            return values.get("v") in ("v1", "v1beta1") and media == "application/json"
        if media in ("application/json", "*/*", "application/*", "application/yaml"):
            return False
    return False


assert set(_CELLS) == set(COLUMNS) == {x.plural for x in r.ALL}
