"""The emulator's etcd: objects in memory, one global resourceVersion, a bounded event history.

Contract:

- Every write (create, replace, delete) takes the next integer of one global counter as the
  object's ``metadata.resourceVersion`` and appends one :class:`WatchEvent` to the history.
  The counter only grows, across all resources, like etcd's revision.
- The history keeps the last ``history_limit`` events. A watch that resumes from a version older
  than the oldest kept event gets :func:`~.errors.expired` (410), as after etcd compaction.
- Objects are plain JSON dicts. The store hands out and keeps deep copies, so callers never share
  a mutable object with it.
- ``lock`` is re-entrant; a caller that reads and then writes (the controller, a patch) holds it
  across both, which makes the pair atomic.
"""

from __future__ import annotations

import builtins
import copy
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .clock import Clock, rfc3339
from .errors import already_exists, conflict, expired, not_found
from .resources import ResourceType

Obj = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``old`` is the previous object."""

    rv: int
    plural: str
    type: str
    obj: Obj
    old: Obj | None = None


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


class Store:
    """In-memory objects of every served resource (see the module docstring for the contract)."""

    def __init__(self, clock: Clock, history_limit: int = 1000) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self._history: deque[WatchEvent] = deque()
        self._history_limit = history_limit
        self._compacted = 0  # every event with rv > _compacted is still in the history

    @property
    def resource_version(self) -> int:
        """The version of the latest write (what a list returns in ``metadata``)."""
        with self.lock:
            return self._rv

    def _record(self, event: WatchEvent) -> None:
        self._history.append(event)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv
        self._changed.notify_all()

    # -- reads -------------------------------------------------------------------------------

    def find(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """The object, or None."""
        with self.lock:
            obj = self._objects.get(rtype.plural, {}).get((namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        """The object; raises ApiError(404) when absent."""
        obj = self.find(rtype, namespace, name)
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return obj

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None = None,
        predicate: Callable[[Obj], bool] | None = None,
    ) -> list[Obj]:
        """Objects of ``rtype`` (in ``namespace`` when given), sorted by namespace and name."""
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for key, obj in sorted(self._objects.get(rtype.plural, {}).items())
                if (namespace is None or key[0] == namespace)
                and (predicate is None or predicate(obj))
            ]
        return items

    # -- writes ------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, obj: Obj) -> Obj:
        """Store a new object, filling uid, resourceVersion, creationTimestamp, generation.

        Raises ApiError(409 AlreadyExists) when the name is taken.
        """
        with self.lock:
            bucket = self._objects.setdefault(rtype.plural, {})
            key = _key(obj)
            if key in bucket:
                raise already_exists(rtype.plural, rtype.group, key[1])
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
            meta = obj["metadata"]
            self._rv += 1
            meta.setdefault("uid", str(uuid.uuid4()))  # the API layer may pre-assign it
            meta["resourceVersion"] = str(self._rv)
            meta["creationTimestamp"] = rfc3339(self.clock.now())
            if "spec" in obj:
                meta["generation"] = 1
            for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(field, None)
            bucket[key] = obj
            self._record(WatchEvent(self._rv, rtype.plural, "ADDED", copy.deepcopy(obj)))
            return copy.deepcopy(obj)

    def replace(self, rtype: ResourceType, obj: Obj, expect_rv: str | None = None) -> Obj:
        """Overwrite an existing object with ``obj`` (same namespace and name).

        System fields (uid, creationTimestamp) are kept from the stored object; ``generation``
        grows when ``spec`` changed. ``expect_rv`` set and stale raises ApiError(409 Conflict).
        A write that changes nothing is a no-op that keeps the old resourceVersion, as on the
        real server.
        """
        with self.lock:
            key = _key(obj)
            current = self._objects.get(rtype.plural, {}).get(key)
            if current is None:
                raise not_found(rtype.plural, rtype.group, key[1])
            if expect_rv and expect_rv != current["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, key[1])
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
            meta, old_meta = obj["metadata"], current["metadata"]
            for field in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if obj == current:
                return copy.deepcopy(current)
            if "spec" in obj and obj.get("spec") != current.get("spec"):
                meta["generation"] = int(old_meta.get("generation", 0)) + 1
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[rtype.plural][key] = obj
            self._record(
                WatchEvent(self._rv, rtype.plural, "MODIFIED", copy.deepcopy(obj), current)
            )
            return copy.deepcopy(obj)

    def update(
        self, rtype: ResourceType, namespace: str | None, name: str, mutate: Callable[[Obj], None]
    ) -> Obj:
        """Read, ``mutate`` in place, and write back atomically; 404 when absent."""
        with self.lock:
            obj = self.get(rtype, namespace, name)
            mutate(obj)
            return self.replace(rtype, obj)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        """Remove an object and return it as last seen (with the deletion's resourceVersion)."""
        with self.lock:
            bucket = self._objects.get(rtype.plural, {})
            obj = bucket.pop((namespace or "", name), None)
            if obj is None:
                raise not_found(rtype.plural, rtype.group, name)
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._record(WatchEvent(self._rv, rtype.plural, "DELETED", copy.deepcopy(obj)))
            return copy.deepcopy(obj)

    # -- watch -------------------------------------------------------------------------------

    def events_after(
        self, rv: int, plurals: Iterable[str], timeout: float
    ) -> builtins.list[WatchEvent]:
        """Events with resourceVersion > ``rv`` for ``plurals``, waiting up to ``timeout`` s.

        Returns [] when none arrived in time. Raises ApiError(410 Expired) when events after
        ``rv`` were already dropped from the history.
        """
        wanted = set(plurals)
        with self._changed:
            if rv < self._compacted:
                raise expired(rv, self._compacted + 1)
            if self._rv <= rv and timeout > 0:
                self._changed.wait(timeout)
                if rv < self._compacted:
                    raise expired(rv, self._compacted + 1)
            return [e for e in self._history if e.rv > rv and e.plural in wanted]

    def compact(self) -> None:
        """Drop the whole event history now (tests use it to provoke a 410)."""
        with self.lock:
            if self._history:
                self._compacted = self._history[-1].rv
                self._history.clear()
