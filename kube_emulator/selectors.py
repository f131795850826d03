"""Label and field selectors, parsed like the API server parses ``labelSelector`` and
``fieldSelector``.

Label selector grammar (comma-separated requirements, all must hold)::

    k=v   k==v   k!=v   k   !k   k in (a,b)   k notin (a,b)

``k!=v`` and ``k notin (...)`` also match objects without the label, as in Kubernetes.
Field selectors support ``=``, ``==`` and ``!=`` on the fields listed in :data:`FIELDS`; any
other field is a 400, as on the real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_IN = re.compile(r"^\s*(!?[^\s!=,()]+)\s+(in|notin)\s*\(([^()]*)\)\s*$")
_EQ = re.compile(r"^\s*([^\s!=,()]+)\s*(==|!=|=)\s*([^\s!=,()]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=,()]+)\s*$")
_LABEL_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement; ``op`` is one of ``= != in notin exists !``."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if self.op == "exists":
            return has
        return not has  # "!"


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a ``labelSelector``; raises ApiError(400) on a malformed one.

    >>> [r.op for r in parse_label_selector("app=x,tier notin (a, b),!gone")]
    ['=', 'notin', '!']
    """
    if not text or not text.strip():
        return []
    requirements = []
    for part in _split_top_level(text):
        if match := _IN.match(part):
            key, op, raw = match.groups()
            values = frozenset(v.strip() for v in raw.split(",") if v.strip())
            requirements.append(Requirement(_checked_key(key, text), op, values))
        elif match := _EQ.match(part):
            key, op, value = match.groups()
            _check_value(value, text)
            requirements.append(
                Requirement(
                    _checked_key(key, text), "!=" if op == "!=" else "=", frozenset([value])
                )
            )
        elif match := _EXISTS.match(part):
            bang, key = match.groups()
            requirements.append(Requirement(_checked_key(key, text), "!" if bang else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r} in {text!r}")
    return requirements


def _checked_key(key: str, text: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if key.startswith("!") or not _LABEL_PART.match(name) or len(name) > 63:
        raise bad_request(f"invalid label key {key!r} in selector {text!r}")
    return key


def _check_value(value: str, text: str) -> None:
    if value and (len(value) > 63 or not _LABEL_PART.match(value)):
        raise bad_request(f"invalid label value {value!r} in selector {text!r}")


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    """True when every requirement holds for ``labels`` (an empty selector matches all)."""
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


def _path(*keys: str) -> Callable[[dict[str, Any]], str]:
    def get(obj: dict[str, Any]) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


_COMMON = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

#: Field selectors each resource supports (a subset of the real server's, chosen for the backend).
FIELDS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "pods": {
        **_COMMON,
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "status.phase": _path("status", "phase"),
    },
    "nodes": {**_COMMON, "spec.unschedulable": _path("spec", "unschedulable")},
    "namespaces": {**_COMMON, "status.phase": _path("status", "phase")},
    "jobs": {**_COMMON, "status.successful": _path("status", "succeeded")},
    "daemonsets": _COMMON,  # upstream's DaemonSets support only the metadata fields
    "deviceclasses": _COMMON,
    "resourceslices": {
        **_COMMON,
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.driver": _path("spec", "driver"),
    },
    "resourceclaims": _COMMON,
    "services": {
        **_COMMON,
        "spec.clusterIP": _path("spec", "clusterIP"),
        "spec.type": _path("spec", "type"),
    },
    "events": {
        **_COMMON,
        "involvedObject.kind": _path("involvedObject", "kind"),
        "involvedObject.name": _path("involvedObject", "name"),
        "involvedObject.namespace": _path("involvedObject", "namespace"),
        "involvedObject.uid": _path("involvedObject", "uid"),
        "reason": _path("reason"),
        "type": _path("type"),
    },
}


@dataclass(frozen=True)
class FieldRequirement:
    getter: Callable[[dict[str, Any]], str]
    negated: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        return (self.getter(obj) == self.value) != self.negated


def parse_field_selector(plural: str, text: str | None) -> list[FieldRequirement]:
    """Parse a ``fieldSelector`` for resource ``plural``; 400 on bad syntax or field."""
    if not text or not text.strip():
        return []
    supported = FIELDS.get(plural, _COMMON)
    requirements = []
    for part in text.split(","):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not match:
            raise bad_request(f"invalid field selector: {part!r}")
        field, op, value = match.groups()
        if field not in supported:
            raise bad_request(f"field label not supported: {field}")
        requirements.append(FieldRequirement(supported[field], op == "!=", value))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    """True when every field requirement holds for ``obj``."""
    return all(r.matches(obj) for r in requirements)
