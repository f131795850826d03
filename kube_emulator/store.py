"""The emulator's etcd: objects in memory, one global resourceVersion, a bounded event history.

Contract:

- Every write (create, replace, delete) takes the next integer of one global counter as the
  object's ``metadata.resourceVersion`` and appends one :class:`WatchEvent` to the history.
  The counter only grows, across all resources, like etcd's revision.
- The history keeps the last ``history_limit`` events. A watch that resumes from a version older
  than the oldest kept event gets :func:`~.errors.expired` (410), as after etcd compaction; so
  does a list at an exact older version (a paginated list's continue token): the store rebuilds
  the state at any version still covered by the history (:meth:`Store.list_at`).
- Objects are plain JSON dicts. The store hands out and keeps copies, so callers never share
  a mutable object with it; a stored dict is never changed in place (a write stores a new
  one), which lets reads copy outside the mutex.
- ``lock`` is re-entrant; a caller that reads and then writes (the controller, a patch) holds it
  across both, which makes the pair atomic. Reads do not take it: each read and each write is
  atomic on its own (an internal mutex), so a client's GET or LIST never waits for a whole
  controller pass, as on a real API server.
"""

from __future__ import annotations

import bisect
import builtins
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from .clock import Clock, rfc3339
from .errors import already_exists, conflict, expired, not_found
from .resources import ResourceType

Obj = dict[str, Any]
#: Watch events kept (etcd keeps about 5 minutes of revisions; 20,000 covers minutes of a
#: busy emulator, so paginated lists and resumed watches do not expire under 1,000 Jobs).
DEFAULT_HISTORY = 20_000


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): about twice as fast as deepcopy."""
    if type(value) is dict:
        return {k: copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [copy_json(v) for v in value]
    return value


def copy_obj(obj: Obj) -> Obj:
    """:func:`copy_json` of one object (a JSON dict copies into a JSON dict)."""
    return cast(Obj, copy_json(obj))


@dataclass(frozen=True)
class WatchEvent:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``old`` is the previous object.

    ``obj`` and ``old`` are the store's own copies: readers must not mutate them.
    """

    rv: int
    plural: str
    type: str
    obj: Obj
    old: Obj | None = None


def object_key(obj: Obj) -> str:
    """The object's key in its resource, ``namespace/name`` (or ``name``), etcd's order."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or ""
    return f"{namespace}/{meta['name']}" if namespace else meta["name"]


def _key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


class Store:
    """In-memory objects of every served resource (see the module docstring for the contract)."""

    def __init__(self, clock: Clock, history_limit: int = DEFAULT_HISTORY) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._mutex = threading.Lock()
        self._changed = threading.Condition(self._mutex)
        self._objects: dict[str, dict[str, Obj]] = {}
        self._rv = 0
        self._history: builtins.list[WatchEvent] = []  # ordered by rv
        self._history_limit = history_limit
        self._compacted = 0  # every event with rv > _compacted is still in the history

    @property
    def resource_version(self) -> int:
        """The version of the latest write (what a list returns in ``metadata``)."""
        with self._mutex:
            return self._rv

    @property
    def oldest_version(self) -> int:
        """The oldest version the store can still list or watch from."""
        with self._mutex:
            return self._compacted

    def _record(self, event: WatchEvent) -> None:
        self._history.append(event)
        extra = len(self._history) - self._history_limit
        if extra > 0:
            self._compacted = self._history[extra - 1].rv
            del self._history[:extra]
        self._changed.notify_all()

    # -- reads -------------------------------------------------------------------------------

    def find(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """The object, or None."""
        with self._mutex:
            obj = self._objects.get(rtype.plural, {}).get(_key(namespace, name))
            return copy_obj(obj) if obj is not None else None

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
    ) -> builtins.list[Obj]:
        """Objects of ``rtype`` (in ``namespace`` when given), sorted by namespace and name."""
        return self.list_at(rtype, namespace, predicate)[0]

    def uids(self, rtype: ResourceType) -> set[str]:
        """The uids of every stored object of ``rtype`` (no copies)."""
        with self._mutex:
            return {o["metadata"]["uid"] for o in self._objects.get(rtype.plural, {}).values()}

    def list_at(
        self,
        rtype: ResourceType,
        namespace: str | None = None,
        predicate: Callable[[Obj], bool] | None = None,
        version: int | None = None,
        after: str | None = None,
    ) -> tuple[builtins.list[Obj], int]:
        """(objects, version): the list as it was at ``version`` (None: now), sorted by key.

        ``after`` keeps only keys greater than it (a continue token's position). An older
        ``version`` is rebuilt from the event history; 410 Expired once it is compacted away.
        """
        with self._mutex:
            objects = self._objects.get(rtype.plural, {})
            if version is not None and version < self._rv:
                if version < self._compacted:
                    raise expired(version, self._compacted + 1)
                objects = dict(objects)
                for event in reversed(self._history):
                    if event.rv <= version:
                        break
                    if event.plural != rtype.plural:
                        continue
                    key = object_key(event.obj)
                    if event.type == "ADDED":
                        objects.pop(key, None)
                    elif event.old is not None:
                        objects[key] = event.old
            prefix = f"{namespace}/" if namespace and rtype.namespaced else None
            chosen = [
                obj
                for key, obj in sorted(objects.items())
                if (prefix is None or key.startswith(prefix)) and (after is None or key > after)
            ]
            read_at = self._rv if version is None else version
        # Stored objects are never changed in place (a write stores a new dict), so the
        # filtering and copying need not hold the mutex.
        items = [copy_json(obj) for obj in chosen if predicate is None or predicate(obj)]
        return items, read_at

    # -- writes ------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Store a new object, filling uid, resourceVersion, creationTimestamp, generation.

        Raises ApiError(409 AlreadyExists) when the name is taken. ``dry_run`` checks and
        returns the object as it would be stored, and stores nothing.
        """
        with self.lock, self._mutex:
            bucket = self._objects.setdefault(rtype.plural, {})
            key = object_key(obj)
            if key in bucket:
                raise already_exists(rtype.plural, rtype.group, obj["metadata"]["name"])
            obj = copy_obj(obj)
            obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
            meta = obj["metadata"]
            meta.setdefault("uid", str(uuid.uuid4()))  # the API layer may pre-assign it
            meta["creationTimestamp"] = rfc3339(self.clock.now())
            if "spec" in obj:
                meta["generation"] = 1
            for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(field, None)
            if dry_run:
                meta.pop("resourceVersion", None)
                return obj
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            bucket[key] = obj
            self._record(WatchEvent(self._rv, rtype.plural, "ADDED", obj))
            return copy_obj(obj)

    def replace(
        self,
        rtype: ResourceType,
        obj: Obj,
        expect_rv: str | None = None,
        *,
        dry_run: bool = False,
    ) -> Obj:
        """Overwrite an existing object with ``obj`` (same namespace and name).

        System fields (uid, creationTimestamp, the deletion fields) are kept from the stored
        object; ``generation`` grows when ``spec`` changed. ``expect_rv`` set and stale raises
        ApiError(409 Conflict). A write that changes nothing is a no-op that keeps the old
        resourceVersion, as on the real server. An object being deleted whose last finalizer
        this write removes (and whose grace has run out) is deleted.
        """
        with self.lock, self._mutex:
            key = object_key(obj)
            current = self._objects.get(rtype.plural, {}).get(key)
            if current is None:
                raise not_found(rtype.plural, rtype.group, obj["metadata"]["name"])
            if expect_rv and expect_rv != current["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, obj["metadata"]["name"])
            obj = copy_obj(obj)
            obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
            meta, old_meta = obj["metadata"], current["metadata"]
            for field in (
                "uid",
                "creationTimestamp",
                "generation",
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if not meta.get("finalizers"):
                meta.pop("finalizers", None)
            if obj == current:
                return copy_obj(current)
            if "spec" in obj and obj.get("spec") != current.get("spec"):
                meta["generation"] = int(old_meta.get("generation", 0)) + 1
            if dry_run:
                return obj
            if self._finished_deleting(obj):
                return self._remove(rtype, key, obj)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[rtype.plural][key] = obj
            self._record(WatchEvent(self._rv, rtype.plural, "MODIFIED", obj, current))
            return copy_obj(obj)

    def _finished_deleting(self, obj: Obj) -> bool:
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return False
        if obj.get("kind") == "Namespace":  # the namespace lifecycle removes it when empty
            return False
        return not meta.get("deletionGracePeriodSeconds")

    def update(
        self, rtype: ResourceType, namespace: str | None, name: str, mutate: Callable[[Obj], None]
    ) -> Obj:
        """Read, ``mutate`` in place, and write back atomically; 404 when absent."""
        with self.lock:
            obj = self.get(rtype, namespace, name)
            mutate(obj)
            return self.replace(rtype, obj)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        """Remove an object now and return it as last seen (with the deletion's version)."""
        with self.lock, self._mutex:
            key = _key(namespace, name)
            obj = self._objects.get(rtype.plural, {}).get(key)
            if obj is None:
                raise not_found(rtype.plural, rtype.group, name)
            return self._remove(rtype, key, copy_obj(obj))

    def _remove(self, rtype: ResourceType, key: str, obj: Obj) -> Obj:
        old = self._objects[rtype.plural].pop(key)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._record(WatchEvent(self._rv, rtype.plural, "DELETED", obj, old))
        return copy_obj(obj)

    def mark_deleting(
        self, rtype: ResourceType, namespace: str | None, name: str, grace: int, *, dry_run: bool
    ) -> Obj:
        """Start a graceful deletion: ``deletionTimestamp`` = now + ``grace`` seconds.

        A second call may only shorten the grace. Returns the object as stored.
        """
        with self.lock:
            obj = self.get(rtype, namespace, name)
            meta = obj["metadata"]
            now = self.clock.now()
            current = meta.get("deletionGracePeriodSeconds")
            if meta.get("deletionTimestamp") and (current is None or current <= grace):
                return obj
            meta["deletionTimestamp"] = rfc3339(now + grace)
            meta["deletionGracePeriodSeconds"] = grace
            if "generation" in meta:
                meta["generation"] = int(meta["generation"]) + 1
            if dry_run:
                return obj
            with self._mutex:
                key = _key(namespace, name)
                old = self._objects[rtype.plural][key]
                self._rv += 1
                meta["resourceVersion"] = str(self._rv)
                self._objects[rtype.plural][key] = obj
                self._record(WatchEvent(self._rv, rtype.plural, "MODIFIED", obj, old))
            return copy_obj(obj)

    # -- watch -------------------------------------------------------------------------------

    def events_after(
        self, rv: int, plurals: Iterable[str], timeout: float
    ) -> builtins.list[WatchEvent]:
        """Events with resourceVersion > ``rv`` for ``plurals``, waiting up to ``timeout`` s.

        Returns [] when none arrived in time. Raises ApiError(410 Expired) when events after
        ``rv`` were already dropped from the history. The events' objects are shared: read only.
        """
        wanted = set(plurals)
        with self._changed:
            if rv < self._compacted:
                raise expired(rv, self._compacted + 1)
            if self._rv <= rv and timeout > 0:
                self._changed.wait(timeout)
                if rv < self._compacted:
                    raise expired(rv, self._compacted + 1)
            start = bisect.bisect_right(self._history, rv, key=lambda e: e.rv)
            return [e for e in self._history[start:] if e.plural in wanted]

    def compact(self) -> None:
        """Drop the whole event history now (tests use it to provoke a 410)."""
        with self._mutex:
            if self._history:
                self._compacted = self._history[-1].rv
                self._history.clear()
