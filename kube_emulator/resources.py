"""The resource types the emulator serves, and how a URL path names one of them.

Paths follow the real API server::

    /api/v1/{plural}                                  cluster-wide list/watch (or cluster-scoped)
    /api/v1/{plural}/{name}[/{subresource}]           cluster-scoped object (nodes, namespaces)
    /api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]] namespaced collection or object
    /apis/{batch,apps}/v1/...                         the same shapes for the batch and apps groups
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import unknown_path


@dataclass(frozen=True)
class ResourceType:
    """One served resource: ``plural`` in URLs, ``kind`` in objects."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


NODES = ResourceType("", "v1", "nodes", "Node", False, ("status",))
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, ("status",))
#: ``pods/proxy`` is served by :mod:`.proxy` (its paths are longer than an object's).
PODS = ResourceType("", "v1", "pods", "Pod", True, ("status", "log", "proxy"))
EVENTS = ResourceType("", "v1", "events", "Event", True)
JOBS = ResourceType("batch", "v1", "jobs", "Job", True, ("status",))
DAEMONSETS = ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("status",))

#: Every served type. A new one also needs its entry in each table kept per type: openapi.ROOTS,
#: tables.COLUMNS and _CELLS, selectors.FIELDS, protobuf.ROOTS (or NOT_DECODED), and
#: deletion.OWNERS if it owns Pods (tests/kube_emulator/test_resource_coverage.py checks).
ALL: tuple[ResourceType, ...] = (NODES, NAMESPACES, PODS, EVENTS, JOBS, DAEMONSETS)
_BY_GROUP_PLURAL = {(r.group, r.plural): r for r in ALL}


@dataclass(frozen=True)
class Target:
    """What a request path addresses.

    ``namespace`` is None for a cluster-wide collection or a cluster-scoped object; ``name`` is
    None for a collection.
    """

    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def resolve(path: str) -> Target:
    """Map a URL path (no query string) to a :class:`Target`.

    Raises :class:`~.errors.ApiError` (404) for a path that names no served resource.

    >>> t = resolve("/api/v1/namespaces/ns/pods/p/log")
    >>> (t.resource.kind, t.namespace, t.name, t.subresource)
    ('Pod', 'ns', 'p', 'log')
    """
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1":
        group, rest = parts[1], parts[3:]
    else:
        raise unknown_path()
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in _BY_GROUP_PLURAL:
        resource = _BY_GROUP_PLURAL[(group, rest[2])]
        namespace: str | None = rest[1]
        tail = rest[3:]
    elif rest and (group, rest[0]) in _BY_GROUP_PLURAL:
        resource = _BY_GROUP_PLURAL[(group, rest[0])]
        namespace = None
        tail = rest[1:]
    else:
        raise unknown_path()
    if not resource.namespaced and namespace is not None:
        raise unknown_path()
    if resource.namespaced and namespace is None and tail:
        raise unknown_path()  # a namespaced object needs its namespace in the path
    if len(tail) > 2 or (len(tail) == 2 and tail[1] not in resource.subresources):
        raise unknown_path()
    name = tail[0] if tail else None
    sub = tail[1] if len(tail) == 2 else None
    return Target(resource, namespace, name, sub)
