"""core/v1 Events written by the simulated scheduler, kubelet and job controller."""

from __future__ import annotations

import itertools
from typing import Any

from . import resources as r
from .clock import rfc3339
from .store import Store

Obj = dict[str, Any]


class EventRecorder:
    """Writes Events like client-go's recorder: one per (object, reason, message), counted.

    A repeat of the same reason and message for the same object bumps ``count`` and
    ``lastTimestamp`` instead of creating another Event, as upstream's event aggregation does.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._sequence = itertools.count()
        self._names: dict[tuple[str, str, str], tuple[str, str]] = {}

    def record(
        self,
        involved: Obj,
        reason: str,
        message: str,
        *,
        type_: str = "Normal",
        component: str = "kubelet",
    ) -> None:
        """Record an Event about ``involved`` (any stored object)."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        now = rfc3339(self.store.clock.now())
        key = (meta.get("uid", ""), reason, message)
        with self.store.lock:
            if key in self._names:
                ns, name = self._names[key]
                existing = self.store.find(r.EVENTS, ns, name)
                if existing is not None:
                    existing["count"] = int(existing.get("count", 1)) + 1
                    existing["lastTimestamp"] = now
                    self.store.replace(r.EVENTS, existing)
                    return
            nanos = int(self.store.clock.now() * 1e9) + next(self._sequence)
            name = f"{meta['name']}.{nanos:x}"
            event = {
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion", "v1"),
                    "kind": involved.get("kind", ""),
                    "name": meta["name"],
                    "namespace": meta.get("namespace", ""),
                    "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": component},
                "reportingComponent": component,
                "reportingInstance": "",
            }
            self.store.create(r.EVENTS, event)
            self._names[key] = (namespace, name)
