"""PATCH in its three formats, immutability, optimistic concurrency."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kube_emulator.patches import merge_patch, strategic_merge_patch

from .conftest import NS, make_job, make_pod


@pytest.mark.parametrize(
    ("patch", "want"),
    [
        pytest.param({"b": 3}, {"a": 1, "b": 3, "l": [1, 2]}, id="replaces-a-value"),
        pytest.param({"a": None}, {"b": 2, "l": [1, 2]}, id="null-deletes"),
        pytest.param({"l": [9]}, {"a": 1, "b": 2, "l": [9]}, id="lists-are-replaced"),
        pytest.param(
            {"m": {"x": 1}}, {"a": 1, "b": 2, "l": [1, 2], "m": {"x": 1}}, id="adds-a-map"
        ),
    ],
)
def test_merge_patch_rfc7386(patch, want) -> None:
    assert merge_patch({"a": 1, "b": 2, "l": [1, 2]}, patch) == want


def test_strategic_merge_merges_containers_by_name_and_deletes_with_directive() -> None:
    target = {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}
    patched = strategic_merge_patch(
        target, {"containers": [{"name": "b", "image": "y:2"}, {"name": "a", "$patch": "delete"}]}
    )
    assert patched == {"containers": [{"name": "b", "image": "y:2"}]}


def test_merge_patch_adds_and_removes_labels_over_http(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, make_pod("p1", {"keep": "1", "drop": "1"}))
    patched = core.patch_namespaced_pod(
        "p1",
        NS,
        {"metadata": {"labels": {"drop": None, "new": "2"}, "annotations": {"note": "hi"}}},
        _content_type="application/merge-patch+json",
    )
    assert patched.metadata.labels == {"keep": "1", "new": "2"}
    assert patched.metadata.annotations == {"note": "hi"}


def test_cordon_is_a_strategic_merge_patch_of_spec_unschedulable(core: client.CoreV1Api) -> None:
    before = core.read_node("tesla-02")
    cordoned = core.patch_node("tesla-02", {"spec": {"unschedulable": True}})
    assert cordoned.spec.unschedulable is True
    assert int(cordoned.metadata.resource_version) > int(before.metadata.resource_version)
    uncordoned = core.patch_node("tesla-02", {"spec": {"unschedulable": None}})
    assert uncordoned.spec.unschedulable is None


def test_taints_merge_by_key(core: client.CoreV1Api) -> None:
    taint = {"key": "maintenance", "value": "true", "effect": "NoSchedule"}
    core.patch_node("tesla-01", {"spec": {"taints": [taint]}})
    other = {"key": "gpu-broken", "value": "1", "effect": "NoSchedule"}
    node = core.patch_node("tesla-01", {"spec": {"taints": [other]}})
    assert sorted(t.key for t in node.spec.taints) == ["gpu-broken", "maintenance"]


def test_suspending_a_job_bumps_generation(batch: client.BatchV1Api) -> None:
    job = batch.create_namespaced_job(NS, make_job("j1"))
    patched = batch.patch_namespaced_job("j1", NS, {"spec": {"suspend": True}})
    assert patched.spec.suspend is True
    assert patched.metadata.generation == job.metadata.generation + 1


def test_json_patch_when_the_body_is_a_list(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, make_pod("p1", {"a": "1"}))
    patched = core.patch_namespaced_pod(
        "p1", NS, [{"op": "replace", "path": "/metadata/labels/a", "value": "2"}]
    )
    assert patched.metadata.labels == {"a": "2"}


def test_changing_a_job_template_is_422_field_is_immutable(batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job(NS, make_job("j1"))
    with pytest.raises(ApiException) as exc:
        batch.patch_namespaced_job(
            "j1",
            NS,
            {"spec": {"template": {"spec": {"containers": [{"name": "train", "image": "z"}]}}}},
        )
    assert exc.value.status == 422
    assert "immutable" in exc.value.body


def test_stale_resource_version_is_409_conflict(core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod(NS, make_pod("p1"))
    core.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_pod(
            "p1",
            NS,
            {"metadata": {"labels": {"x": "2"}, "resourceVersion": pod.metadata.resource_version}},
        )
    assert exc.value.status == 409
    assert '"reason": "Conflict"' in exc.value.body


def test_main_resource_ignores_status_and_status_subresource_takes_it(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_pod(NS, make_pod("p1"))
    ignored = core.patch_namespaced_pod("p1", NS, {"status": {"phase": "Succeeded"}})
    assert ignored.status.phase == "Pending"
    taken = core.patch_namespaced_pod_status("p1", NS, {"status": {"phase": "Succeeded"}})
    assert taken.status.phase == "Succeeded"


def test_replace_with_put_checks_the_name(core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod(NS, make_pod("p1"))
    pod.metadata.labels = {"replaced": "yes"}
    assert core.replace_namespaced_pod("p1", NS, pod).metadata.labels == {"replaced": "yes"}
    pod.metadata.name = "other"
    pod.metadata.resource_version = None
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_pod("p1", NS, pod)
    assert exc.value.status == 400
