"""Follow the cluster with watches and reconcile as soon as something changes.

Periodic reconcile (beat) is the safety net; the watcher makes status changes show up in
about a second instead of a sync period. It follows Karimasu's Jobs and Pods from their
last resourceVersion, relists on 410 Gone, backs off (1 s doubling to 30 s) while the API
server is unreachable, and calls `on_change` at most once per `debounce_s` burst and at
least every `resync_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from scheduler.cluster.backend import (
    ClusterBackend,
    ClusterError,
    ClusterUnavailable,
    ResyncRequired,
)

log = logging.getLogger("karimasu.watch")


class ClusterWatcher:
    KINDS = ("jobs", "pods")

    def __init__(
        self,
        backend: ClusterBackend,
        on_change: Callable[[], object],
        *,
        resync_s: float = 15.0,
        debounce_s: float = 0.2,
        timeout_s: int = 30,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.backend = backend
        self.on_change = on_change
        self.resync_s = resync_s
        self.debounce_s = debounce_s
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.dirty = threading.Event()
        self.resyncs = 0  # relists after 410, for operators and tests

    def run(self, stop: threading.Event) -> None:
        """Block until `stop` is set: follow both kinds, reconcile on change."""
        followers = [
            threading.Thread(
                target=self._follow, args=(kind, stop), daemon=True, name=f"watch-{kind}"
            )
            for kind in self.KINDS
        ]
        for thread in followers:
            thread.start()
        last_pass = float("-inf")
        while not stop.is_set():
            # Short waits so a stop is noticed within a second.
            woke = self.dirty.wait(timeout=1.0)
            if stop.is_set():
                break
            if not woke and time.monotonic() - last_pass < self.resync_s:
                continue
            stop.wait(self.debounce_s)  # let a burst of events arrive
            self.dirty.clear()
            last_pass = time.monotonic()
            try:
                self.on_change()
            except Exception:  # the watcher must outlive any one failed pass
                log.exception("watch.on_change_failed")
        for thread in followers:
            thread.join(timeout=self.timeout_s + 10)

    def _follow(self, kind: str, stop: threading.Event) -> None:
        version: str | None = None
        backoff = 1.0
        while not stop.is_set():
            try:
                for seen in self.backend.watch(kind, version, timeout_s=self.timeout_s):
                    version = seen  # resume from here after a timeout or an outage
                    self.dirty.set()
                    backoff = 1.0
                    if stop.is_set():
                        return
            except ResyncRequired:
                log.info("watch.resync kind=%s", kind)
                self.resyncs += 1
                version = None
                self.dirty.set()
            except ClusterUnavailable as exc:
                log.warning("watch.unavailable kind=%s retry_in=%ss %s", kind, backoff, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            except ClusterError as exc:
                log.error("watch.rejected kind=%s %s", kind, exc)
                stop.wait(self.max_backoff_s)
