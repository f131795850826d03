"""Watching the cluster: resourceVersions, 410 Gone, outages, and the reconcile trigger."""

from __future__ import annotations

import threading
import time

import pytest

from kube_emulator import start_emulator
from kube_emulator.clock import FakeClock
from scheduler.cluster.backend import ResyncRequired
from scheduler.cluster.kube import KubernetesBackend
from scheduler.services.jobs import job_spec
from scheduler.services.watch import ClusterWatcher

pytestmark = pytest.mark.django_db


def wait_until(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_watch_starts_from_a_fresh_list_and_sees_a_submission(make_admitted, backend):
    job = make_admitted()
    versions = backend.watch("jobs", None, timeout_s=1)
    start = next(versions)
    backend.submit(job_spec(job))
    changed = next(versions)
    assert int(changed) > int(start)


def test_a_too_old_version_asks_for_a_resync(tmp_path, make_admitted):
    handle = start_emulator(
        port=0, clock=FakeClock(), history_limit=5, kubeconfig_path=tmp_path / "kc"
    )
    try:
        backend = KubernetesBackend.from_kubeconfig(str(handle.kubeconfig_path))
        old = next(backend.watch("jobs", None, timeout_s=1))
        for i in range(4):  # each job makes several events: the history overflows
            job = make_admitted(indices=(i % 2,))
            backend.submit(job_spec(job))
            handle.settle()
        with pytest.raises(ResyncRequired):
            list(backend.watch("jobs", old, timeout_s=1))
    finally:
        handle.close()


def test_watcher_reconciles_on_change_and_survives_an_outage(make_admitted, backend, emulator):
    calls = []
    watcher = ClusterWatcher(
        backend,
        lambda: calls.append(time.monotonic()),
        resync_s=60,
        debounce_s=0.05,
        timeout_s=2,
        max_backoff_s=0.5,
    )
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(calls) >= 1)  # the initial list counts as a change
        settled = len(calls)
        backend.submit(job_spec(make_admitted()))
        assert wait_until(lambda: len(calls) > settled)

        emulator.stop()
        time.sleep(1.0)  # watches fail and back off; the watcher keeps running
        assert thread.is_alive()
        emulator.restart()
        before = len(calls)
        backend.submit(job_spec(make_admitted(indices=(1,))))
        assert wait_until(lambda: len(calls) > before)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
