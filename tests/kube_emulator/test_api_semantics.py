"""API semantics only the emulator can show on a FakeClock (the rest: conformance/)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from kubernetes import client

from kube_emulator.resources import JOBS

from .conftest import NS, job_pods, make_job, make_pod


def _call(emulator, method: str, path: str, body: bytes | None = None, **headers: str):
    request = urllib.request.Request(emulator.url + path, body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _events(emulator, plural: str, after: int, name: str) -> list[str]:
    return [
        e.type
        for e in emulator.store._history
        if e.rv > after and e.plural == plural and e.obj["metadata"]["name"] == name
    ]


def test_a_running_pod_terminates_for_its_grace_period_then_goes(emulator, core) -> None:
    core.create_namespaced_pod(NS, make_pod("graceful", termination_grace_period_seconds=20))
    emulator.settle()
    assert core.read_namespaced_pod("graceful", NS).status.phase == "Running"
    start = emulator.store.resource_version
    answer = core.delete_namespaced_pod("graceful", NS)
    assert answer.metadata.deletion_grace_period_seconds == 20
    emulator.advance(19)
    pod = core.read_namespaced_pod("graceful", NS)
    assert pod.metadata.deletion_timestamp is not None
    assert pod.status.phase == "Running"
    emulator.advance(1)
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_pod("graceful", NS)
    assert gone.value.status == 404
    assert _events(emulator, "pods", start, "graceful") == ["MODIFIED", "DELETED"]


def test_an_explicit_grace_shortens_it_and_an_unbound_pod_goes_at_once(emulator, core) -> None:
    core.create_namespaced_pod(NS, make_pod("quick"))
    core.create_namespaced_pod(NS, make_pod("unbound", node_selector={"nowhere": "x"}))
    emulator.settle()
    core.delete_namespaced_pod("quick", NS, grace_period_seconds=0)
    core.delete_namespaced_pod("unbound", NS)
    assert [p.metadata.name for p in core.list_namespaced_pod(NS).items] == []


def test_foreground_deletion_keeps_the_job_until_its_pods_are_gone(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("fg", duration=100))
    emulator.settle()
    batch.delete_namespaced_job("fg", NS, propagation_policy="Foreground")
    emulator.advance(10)
    job = batch.read_namespaced_job("fg", NS)
    assert job.metadata.finalizers == ["foregroundDeletion"]
    assert job.metadata.deletion_timestamp is not None
    [pod] = job_pods(core, "fg")
    assert pod.metadata.deletion_timestamp is not None
    emulator.advance(20)  # the pod's default grace (30 s) ends: then the Job goes
    assert job_pods(core, "fg") == []
    assert batch.list_namespaced_job(NS).items == []


def test_a_dry_run_job_never_runs(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("ghost"), dry_run="All")
    emulator.advance(5)
    assert batch.list_namespaced_job(NS).items == []
    assert core.list_namespaced_pod(NS).items == []
    assert core.list_namespaced_event(NS).items == []


def test_unknown_fields_from_the_official_client_are_warned_about_and_dropped(
    emulator, batch
) -> None:
    job = batch.api_client.sanitize_for_serialization(make_job("extra"))
    job["spec"]["template"]["spec"]["containers"][0]["gpuCount"] = 2
    status, headers, _ = _call(
        emulator,
        "POST",
        f"/apis/batch/v1/namespaces/{NS}/jobs",
        json.dumps(job).encode(),
        **{"Content-Type": "application/json"},
    )
    assert status == 201
    assert 'unknown field \\"spec.template.spec.containers[0].gpuCount\\"' in headers["Warning"]
    stored = emulator.store.get(JOBS, NS, "extra")
    assert "gpuCount" not in stored["spec"]["template"]["spec"]["containers"][0]


def test_a_continue_token_older_than_the_history_is_410(emulator, batch) -> None:
    for i in range(3):
        batch.create_namespaced_job(NS, make_job(f"paged-{i}"))
    first = batch.list_namespaced_job(NS, limit=1)
    token = first.metadata._continue
    emulator.settle()  # writes: the snapshot is now older than the latest version
    emulator.store.compact()
    with pytest.raises(client.ApiException) as expired:
        batch.list_namespaced_job(NS, limit=1, _continue=token)
    assert expired.value.status == 410
    assert json.loads(expired.value.body)["reason"] == "Expired"
    garbled = _call(emulator, "GET", f"/apis/batch/v1/namespaces/{NS}/jobs?continue=xyz")
    assert garbled[0] == 400


def test_protobuf_objects_are_refused_with_415_and_406(emulator) -> None:
    status, headers, body = _call(
        emulator,
        "POST",
        f"/api/v1/namespaces/{NS}/pods",
        b"k8s\x00\x0a\x0b",
        **{"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    assert status == 415
    assert json.loads(body)["reason"] == "UnsupportedMediaType"
    only_protobuf = {"Accept": "application/vnd.kubernetes.protobuf"}
    status, _, body = _call(emulator, "GET", f"/api/v1/namespaces/{NS}/pods", **only_protobuf)
    assert (status, json.loads(body)["code"]) == (406, 406)
    # the v2 OpenAPI is answered in protobuf (test_openapi_protobuf.py), other protobuf is not
    v2_as_object = {"Accept": "application/vnd.kubernetes.protobuf"}
    assert _call(emulator, "GET", "/openapi/v2", **v2_as_object)[0] == 406
    # a client listing JSON after protobuf gets JSON
    both = {"Accept": "application/vnd.kubernetes.protobuf, application/json"}
    status, headers, _ = _call(emulator, "GET", f"/api/v1/namespaces/{NS}/pods", **both)
    assert (status, headers["Content-Type"]) == (200, "application/json")


def test_a_forced_delete_ends_a_terminating_pod_at_once(emulator, core) -> None:
    core.create_namespaced_pod(NS, make_pod("stuck"))
    emulator.settle()
    core.delete_namespaced_pod("stuck", NS)
    assert core.read_namespaced_pod("stuck", NS).metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("stuck", NS, grace_period_seconds=0)
    assert core.list_namespaced_pod(NS).items == []
