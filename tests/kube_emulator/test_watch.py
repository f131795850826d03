"""Watch: event types, resume from a resourceVersion, timeouts, 410 for expired history."""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kube_emulator import FakeClock, start_emulator

from .conftest import NS, make_pod


def _collect(stream, count: int, w: watch.Watch) -> list[tuple[str, str]]:
    """Take ``count`` events from a watch stream, then stop it."""
    seen = []
    for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == count:
            w.stop()
    return seen


def test_resumed_watch_replays_added_modified_deleted(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespaced_pod(NS, make_pod("p1"))
    core.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"x": "1"}}})
    core.delete_namespaced_pod("p1", NS)
    w = watch.Watch()
    stream = w.stream(core.list_namespaced_pod, NS, resource_version=start, timeout_seconds=5)
    assert _collect(stream, 3, w) == [("ADDED", "p1"), ("MODIFIED", "p1"), ("DELETED", "p1")]


def test_watch_without_version_starts_with_existing_objects(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, make_pod("old"))
    w = watch.Watch()
    stream = w.stream(core.list_namespaced_pod, NS, timeout_seconds=5)
    assert _collect(stream, 1, w) == [("ADDED", "old")]


def test_live_watch_sees_changes_made_while_it_runs(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_pod(NS).metadata.resource_version
    w = watch.Watch()
    seen: list[tuple[str, str]] = []
    stream = w.stream(core.list_namespaced_pod, NS, resource_version=start, timeout_seconds=5)
    reader = threading.Thread(target=lambda: seen.extend(_collect(stream, 2, w)))
    reader.start()
    time.sleep(0.05)  # let the watch connect
    core.create_namespaced_pod(NS, make_pod("live"))
    core.delete_namespaced_pod("live", NS)
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert seen == [("ADDED", "live"), ("DELETED", "live")]


def test_timeout_seconds_ends_the_stream_with_a_bookmark(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_pod(NS).metadata.resource_version
    w = watch.Watch()
    began = time.monotonic()
    events = list(
        w.stream(
            core.list_namespaced_pod,
            NS,
            resource_version=start,
            timeout_seconds=1,
            allow_watch_bookmarks=True,
        )
    )
    elapsed = time.monotonic() - began
    assert [e["type"] for e in events] == ["BOOKMARK"]
    assert w.resource_version == start  # nothing happened: resume where we started
    assert 0.9 <= elapsed < 3


def test_selector_watch_turns_label_changes_into_added_and_deleted(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespaced_pod(NS, make_pod("p1", {"team": "nlp"}))
    core.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"team": "vision"}}})
    core.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"team": "ops"}}})
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_pod,
        NS,
        label_selector="team=vision",
        resource_version=start,
        timeout_seconds=5,
    )
    assert _collect(stream, 2, w) == [("ADDED", "p1"), ("DELETED", "p1")]


def test_watch_events_carry_growing_resource_versions(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_pod(NS).metadata.resource_version
    for name in ("a", "b", "c"):
        core.create_namespaced_pod(NS, make_pod(name))
    w = watch.Watch()
    versions = []
    for event in w.stream(core.list_namespaced_pod, NS, resource_version=start, timeout_seconds=5):
        versions.append(int(event["object"].metadata.resource_version))
        if len(versions) == 3:
            w.stop()
    assert versions == sorted(versions)
    assert versions[0] > int(start)


@pytest.mark.parametrize("flag", ["true", "True"], ids=["lowercase-true", "python-client-True"])
def test_raw_http_watch_streams_chunked_ndjson(emulator, core: client.CoreV1Api, flag: str) -> None:
    start = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespaced_pod(NS, make_pod("p1"))
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    connection.request("GET", f"/api/v1/namespaces/{NS}/pods?watch={flag}&resourceVersion={start}")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    event = json.loads(response.readline())  # one event per line, sent as it happens
    connection.close()
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "p1")


def test_watch_from_compacted_version_is_410_expired(tmp_path: Path) -> None:
    with start_emulator(
        clock=FakeClock(), kubeconfig_path=tmp_path / "kc", history_limit=3
    ) as handle:
        api = config.new_client_from_config(config_file=str(handle.kubeconfig_path))
        core = client.CoreV1Api(api)
        old = core.list_namespaced_pod(NS).metadata.resource_version
        for i in range(5):
            core.create_namespaced_pod(NS, make_pod(f"p{i}"))
        with pytest.raises(ApiException) as exc:
            list(
                watch.Watch().stream(
                    core.list_namespaced_pod, NS, resource_version=old, timeout_seconds=2
                )
            )
        api.close()
    assert exc.value.status == 410
    assert "Expired" in exc.value.reason
    assert "too old resource version" in exc.value.reason


def test_expired_watch_is_an_error_event_inside_a_200(emulator, core: client.CoreV1Api) -> None:
    old = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespaced_pod(NS, make_pod("p1"))
    emulator.store.compact()
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    connection.request("GET", f"/api/v1/namespaces/{NS}/pods?watch=1&resourceVersion={old}")
    response = connection.getresponse()
    events = [json.loads(line) for line in response.read().splitlines() if line]
    connection.close()
    assert response.status == 200
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"
