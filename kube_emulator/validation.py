"""Defaulting and validation of objects written through the API (the 422 answers).

:func:`prepare_new` is what admission + defaulting + validation do on create; :func:`check_update`
is the immutability check on patch/replace. Both raise :func:`~.errors.invalid` (422) with one
cause per bad field. Only the rules the backend can trip over are implemented: names, labels,
containers, restart policy, GPU quantities, Job limits and immutable fields.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from . import resources as r
from .admission import admit_new_pod
from .errors import FieldCause, bad_request, invalid
from .quantities import is_extended, parse_quantity
from .resources import ResourceType

Obj = dict[str, Any]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_RANDOM_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's, without vowels


def random_suffix(length: int = 5) -> str:
    """Random lowercase suffix like the API server's ``generateName`` and the Job controller's."""
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(length))


_NAME_PART_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
MAX_ANNOTATIONS_BYTES = 256 * 1024


def _quoted(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _qualified_name_errors(key: str, path: str) -> list[FieldCause]:
    """A label or annotation key (``prefix/name``), with upstream's messages."""
    prefix, _, name = key.rpartition("/")
    problems = []
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if name and _LABEL_VALUE.match(name) is None:
        problems.append(_NAME_PART_MESSAGE)
    if "/" in key and not prefix:
        problems.append("prefix part must be non-empty")
    elif prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        problems.append(f"prefix part {_SUBDOMAIN_MESSAGE}")
    return [FieldCause(path, f"Invalid value: {_quoted(key)}: {p}") for p in problems]


def labels_and_annotations_errors(meta: Obj, path: str) -> list[FieldCause]:
    """Errors in ``labels`` and ``annotations`` of metadata found at ``path``."""
    causes: list[FieldCause] = []
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    for kind, values in (("labels", labels), ("annotations", annotations)):
        if not isinstance(values, dict):
            causes.append(FieldCause(f"{path}.{kind}", "Invalid value: must be an object"))
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        return causes
    for key, value in labels.items():
        causes += _qualified_name_errors(key, f"{path}.labels")
        if not isinstance(value, str):
            causes.append(FieldCause(f"{path}.labels", f"Invalid value: {value!r}: not a string"))
        elif len(value) > 63:
            causes.append(
                FieldCause(
                    f"{path}.labels",
                    f"Invalid value: {_quoted(value)}: must be no more than 63 characters",
                )
            )
        elif not _LABEL_VALUE.match(value):
            causes.append(
                FieldCause(
                    f"{path}.labels", f"Invalid value: {_quoted(value)}: {_LABEL_VALUE_MESSAGE}"
                )
            )
    size = 0
    for key, value in annotations.items():
        causes += _qualified_name_errors(key, f"{path}.annotations")
        if not isinstance(value, str):
            causes.append(
                FieldCause(f"{path}.annotations", f"Invalid value: {key!r}: not a string")
            )
            continue
        size += len(key) + len(value)
    if size > MAX_ANNOTATIONS_BYTES:
        causes.append(
            FieldCause(
                f"{path}.annotations",
                f"Too long: may not be more than {MAX_ANNOTATIONS_BYTES} bytes",
                "FieldValueTooLong",
            )
        )
    return causes


def metadata_errors(rtype: ResourceType, meta: Obj) -> list[FieldCause]:
    """Errors in name, labels and annotations (upstream's messages)."""
    causes: list[FieldCause] = []
    name = meta.get("name") or ""
    if not name:
        causes.append(
            FieldCause(
                "metadata.name",
                "Required value: name or generateName is required",
                "FieldValueRequired",
            )
        )
    else:
        label_like = rtype in (r.NAMESPACES, r.JOBS)  # a Job's name becomes a label value
        pattern, limit = (_DNS_LABEL, 63) if label_like else (_DNS_SUBDOMAIN, 253)
        if len(name) > limit:
            causes.append(
                FieldCause(
                    "metadata.name",
                    f"Invalid value: {_quoted(name)}: must be no more than {limit} characters",
                )
            )
        elif not pattern.match(name):
            message = _LABEL_MESSAGE if label_like else _SUBDOMAIN_MESSAGE
            causes.append(FieldCause("metadata.name", f"Invalid value: {_quoted(name)}: {message}"))
    return causes + labels_and_annotations_errors(meta, "metadata")


def pod_spec_errors(spec: Any, path: str, *, in_job: bool = False) -> list[FieldCause]:
    """Errors in a PodSpec (containers, restart policy, resources)."""
    if not isinstance(spec, dict):
        return [FieldCause(path, "Required value", "FieldValueRequired")]
    causes: list[FieldCause] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(FieldCause(f"{path}.containers", "Required value", "FieldValueRequired"))
    seen: set[str] = set()
    for i, container in enumerate(containers):
        where = f"{path}.containers[{i}]"
        name = container.get("name") or ""
        if not name or not _DNS_LABEL.match(name) or len(name) > 63:
            causes.append(
                FieldCause(f"{where}.name", f"Invalid value: {name!r}: must be a DNS label")
            )
        elif name in seen:
            causes.append(
                FieldCause(f"{where}.name", f"Duplicate value: {name!r}", "FieldValueDuplicate")
            )
        seen.add(name)
        if not container.get("image"):
            causes.append(FieldCause(f"{where}.image", "Required value", "FieldValueRequired"))
        causes += _resource_errors(container.get("resources") or {}, f"{where}.resources")
    policy = spec.get("restartPolicy", "Always")
    allowed = ("OnFailure", "Never") if in_job else ("Always", "OnFailure", "Never")
    if policy not in allowed:
        valid = ", ".join(f'"{p}"' for p in allowed)
        causes.append(
            FieldCause(
                f"{path}.restartPolicy",
                f'Unsupported value: "{policy}": supported values: {valid}',
                "FieldValueNotSupported",
            )
        )
    return causes


def _resource_errors(resources: Obj, path: str) -> list[FieldCause]:
    causes: list[FieldCause] = []
    parsed: dict[str, dict[str, Any]] = {}
    for section in ("limits", "requests"):
        for name, raw in (resources.get(section) or {}).items():
            try:
                value = parse_quantity(raw)
            except ValueError:
                causes.append(
                    FieldCause(
                        f"{path}.{section}[{name}]",
                        f"Invalid value: {raw!r}: quantities must match the regular expression",
                    )
                )
                continue
            if value < 0 or (is_extended(name) and value.denominator != 1):
                causes.append(
                    FieldCause(
                        f"{path}.{section}[{name}]",
                        f"Invalid value: {raw!r}: must be a non-negative integer for {name}"
                        if is_extended(name)
                        else f"Invalid value: {raw!r}: must be greater than or equal to 0",
                    )
                )
                continue
            parsed.setdefault(section, {})[name] = value
    for name, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(name)
        if is_extended(name) and limit is None:
            causes.append(
                FieldCause(
                    f"{path}.limits",
                    f"Required value: Limit must be set for non overcommitable resources ({name})",
                    "FieldValueRequired",
                )
            )
        elif limit is not None and is_extended(name) and request != limit:
            causes.append(
                FieldCause(
                    f"{path}.requests[{name}]",
                    f"Invalid value: must be equal to {name} limit of {limit}",
                )
            )
        elif limit is not None and request > limit:
            causes.append(
                FieldCause(
                    f"{path}.requests",
                    f"Invalid value: must be less than or equal to {name} limit of {limit}",
                )
            )
    return causes


def _default_pod_spec(spec: Obj, *, restart_default: str | None) -> None:
    if restart_default:
        spec.setdefault("restartPolicy", restart_default)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        resources = container.setdefault("resources", {})
        limits = resources.get("limits") or {}
        if limits:  # requests default to limits where unset, as in the API server
            resources["requests"] = {**limits, **(resources.get("requests") or {})}


def prepare_new(rtype: ResourceType, obj: Any, namespace: str | None, uid: str) -> Obj:
    """Default and validate an object a client POSTed; returns the object to store.

    ``namespace`` is the one in the URL; ``uid`` is the uid the store will give the object
    (the Job defaults need it for their selector). Raises 400 for a body that is not an object or
    names another namespace, 422 for an invalid object.
    """
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be a JSON object")
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if rtype.namespaced:
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = f"{meta['generateName']}{random_suffix()}"
    for system in (
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
    ):
        meta.pop(system, None)
    meta["uid"] = uid
    causes = metadata_errors(rtype, meta)
    if rtype is r.PODS:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            _default_pod_spec(spec, restart_default="Always")
        causes += pod_spec_errors(spec, "spec")
        admit_new_pod(obj)
    elif rtype is r.JOBS:
        causes += _prepare_job(obj, uid)
    elif rtype is r.DAEMONSETS:
        from .daemonsets import prepare_daemonset

        causes += prepare_daemonset(obj)
    elif rtype is r.SERVICES:
        causes += _prepare_service(obj, uid)
    elif rtype is r.NAMESPACES:
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
    elif rtype in (r.DEVICECLASSES, r.RESOURCESLICES, r.RESOURCECLAIMS):
        from .dra import prepare as prepare_dra

        causes += prepare_dra(rtype, obj)
    elif rtype is r.EVENTS and not isinstance(obj.get("involvedObject"), dict):
        causes.append(FieldCause("involvedObject", "Required value", "FieldValueRequired"))
    if causes:
        raise invalid(rtype.kind, rtype.group, meta.get("name") or "", causes)
    return obj


def _prepare_service(svc: Obj, uid: str) -> list[FieldCause]:
    """A Service as the API server stores it: type ClusterIP (the only one served), a
    headless one keeps ``clusterIP: None``, another gets an address (from its uid: no
    allocator); ports are checked. Nothing routes traffic: pods have no network here."""
    spec = svc.setdefault("spec", {})
    if not isinstance(spec, dict):
        return [FieldCause("spec", "Invalid value: must be an object", "FieldValueInvalid")]
    causes: list[FieldCause] = []
    kind = spec.setdefault("type", "ClusterIP")
    if kind != "ClusterIP":
        causes.append(
            FieldCause("spec.type", f'Unsupported value: "{kind}"', "FieldValueNotSupported")
        )
    if spec.get("clusterIP") not in ("None", None, ""):
        causes.append(
            FieldCause("spec.clusterIP", "Invalid value: set by the server", "FieldValueInvalid")
        )
    if spec.get("clusterIP") != "None":
        digest = int(uid.replace("-", "")[:4] or "0", 16)
        spec["clusterIP"] = f"10.96.{digest >> 8}.{digest & 255}"
    spec["clusterIPs"] = [spec["clusterIP"]]
    ports = spec.get("ports") or []
    if not isinstance(ports, list):
        return [*causes, FieldCause("spec.ports", "Invalid value", "FieldValueInvalid")]
    for i, port in enumerate(ports):
        number = port.get("port") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append(
                FieldCause(
                    f"spec.ports[{i}].port",
                    "Invalid value: must be between 1 and 65535, inclusive",
                    "FieldValueInvalid",
                )
            )
        elif isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", number)
    if not isinstance(spec.get("selector", {}), dict):
        causes.append(FieldCause("spec.selector", "Invalid value", "FieldValueInvalid"))
    svc.setdefault("status", {"loadBalancer": {}})
    return causes


def _prepare_job(job: Obj, uid: str) -> list[FieldCause]:
    spec = job.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        return [FieldCause("spec.template", "Required value", "FieldValueRequired")]
    causes: list[FieldCause] = []
    if spec.get("backoffLimitPerIndex") is not None:  # then the global limit is off by default
        spec.setdefault("backoffLimit", 2147483647)
    for field, default, minimum in (
        ("parallelism", 1, 0),
        ("completions", 1, 0),
        ("backoffLimit", 6, 0),
    ):
        value = spec.setdefault(field, default)
        if not isinstance(value, int) or value < minimum:
            causes.append(
                FieldCause(
                    f"spec.{field}",
                    f"Invalid value: {value!r}: must be greater than or equal to {minimum}",
                )
            )
    for field, minimum in (("activeDeadlineSeconds", 1), ("ttlSecondsAfterFinished", 0)):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < minimum):
            causes.append(
                FieldCause(
                    f"spec.{field}",
                    f"Invalid value: {value!r}: must be greater than or equal to {minimum}",
                )
            )
    spec.setdefault("suspend", False)
    spec.setdefault("completionMode", "NonIndexed")
    name = job["metadata"].get("name") or ""
    controller_labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec["template"]
    template_meta = template.setdefault("metadata", {})
    if not isinstance(template_meta, dict):
        return [FieldCause("spec.template.metadata", "Invalid value: must be an object")]
    causes += labels_and_annotations_errors(template_meta, "spec.template.metadata")
    if not isinstance(template_meta.get("labels") or {}, dict):
        return causes
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **controller_labels}
    pod_spec = template.get("spec")
    if isinstance(pod_spec, dict):
        _default_pod_spec(pod_spec, restart_default=None)
        pod_spec.setdefault(
            "restartPolicy", "Always"
        )  # defaulted, then rejected below: as upstream
    causes += pod_spec_errors(pod_spec, "spec.template.spec", in_job=True)
    job["status"] = {}
    return causes


#: Spec fields a client may change after creation; any other spec change is a 422.
_MUTABLE_SPEC = {
    "jobs": {
        "suspend",
        "parallelism",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "backoffLimit",
    },
    "pods": {"activeDeadlineSeconds", "tolerations"},
    "daemonsets": {"template", "updateStrategy", "minReadySeconds", "revisionHistoryLimit"},
    "resourceclaims": set(),  # a claim's spec is immutable
    "services": {"selector", "ports", "publishNotReadyAddresses"},
}


def check_update(rtype: ResourceType, old: Obj, new: Obj) -> None:
    """Raise 422 when ``new`` changes an immutable field or is invalid (patch and replace)."""
    causes = metadata_errors(rtype, new.get("metadata") or {})
    mutable = _MUTABLE_SPEC.get(rtype.plural)
    if mutable is not None:
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if rtype is r.PODS:  # container images may change (what `kubectl set image` does)
            old_spec = {
                **old_spec,
                "containers": [{**c, "image": ""} for c in old_spec.get("containers", [])],
            }
            new_spec = {
                **new_spec,
                "containers": [{**c, "image": ""} for c in new_spec.get("containers", [])],
            }
        for field in sorted(set(old_spec) | set(new_spec)):
            if field not in mutable and old_spec.get(field) != new_spec.get(field):
                causes.append(
                    FieldCause(
                        f"spec.{field}", "Invalid value: field is immutable", "FieldValueForbidden"
                    )
                )
    if rtype is r.JOBS:
        spec = new.get("spec") or {}
        limit = spec.get("backoffLimit", 0)
        if (
            not isinstance(limit, int)
            or limit < 0
            or not isinstance(spec.get("suspend", False), bool)
        ):
            causes.append(
                FieldCause("spec", "Invalid value: backoffLimit must be >= 0, suspend a boolean")
            )
    if rtype is r.NODES and not isinstance(
        (new.get("spec") or {}).get("unschedulable", False), bool
    ):
        causes.append(FieldCause("spec.unschedulable", "Invalid value: must be a boolean"))
    if causes:
        raise invalid(rtype.kind, rtype.group, new["metadata"].get("name", ""), causes)
