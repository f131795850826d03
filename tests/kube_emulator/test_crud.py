"""CRUD through the official client: objects, system metadata, and Status errors."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import NS, make_job, make_pod


def test_default_cluster_has_four_v100_nodes_with_two_gpus_each(core: client.CoreV1Api) -> None:
    nodes = core.list_node().items
    assert [n.metadata.name for n in nodes] == ["tesla-01", "tesla-02", "tesla-03", "tesla-04"]
    for node in nodes:
        labels = node.metadata.labels
        assert labels["nvidia.com/gpu.product"] == "Tesla-V100-SXM2-16GB"
        assert labels["nvidia.com/gpu.memory"] == "16384"
        assert labels["nvidia.com/gpu.count"] == "2"
        assert labels["kubernetes.io/hostname"] == node.metadata.name
        assert node.status.capacity["nvidia.com/gpu"] == "2"
        assert node.status.allocatable["nvidia.com/gpu"] == "2"
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready[0].status == "True"


def test_created_object_gets_uid_timestamp_generation_and_version(core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod(NS, make_pod("p1"))
    assert pod.metadata.uid
    assert pod.metadata.creation_timestamp is not None
    assert pod.metadata.generation == 1
    assert pod.metadata.namespace == NS
    assert pod.status.phase == "Pending"
    again = core.read_namespaced_pod("p1", NS)
    assert again.metadata.uid == pod.metadata.uid
    assert again.metadata.resource_version == pod.metadata.resource_version


def test_resource_version_grows_across_kinds_and_lists(
    core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    before = int(core.list_namespaced_pod(NS).metadata.resource_version)
    pod = core.create_namespaced_pod(NS, make_pod("p1"))
    job = batch.create_namespaced_job(NS, make_job("j1"))
    after = int(batch.list_namespaced_job(NS).metadata.resource_version)
    assert before < int(pod.metadata.resource_version) < int(job.metadata.resource_version)
    assert after >= int(job.metadata.resource_version)


def test_namespaced_and_cluster_wide_lists(core: client.CoreV1Api) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    core.create_namespaced_pod(NS, make_pod("a"))
    core.create_namespaced_pod("other", make_pod("b"))
    assert [p.metadata.name for p in core.list_namespaced_pod(NS).items] == ["a"]
    everywhere = core.list_pod_for_all_namespaces().items
    listed = {(p.metadata.namespace, p.metadata.name) for p in everywhere}
    assert {(NS, "a"), ("other", "b")} <= listed
    # ...and the default cluster's own: DaemonSet Pods in kube-system, a notebook elsewhere
    assert {ns for ns, _ in listed} == {NS, "other", "kube-system", "research"}


def test_generate_name_gives_a_suffixed_name(core: client.CoreV1Api) -> None:
    pod = make_pod("x")
    pod.metadata = client.V1ObjectMeta(generate_name="gen-")
    created = core.create_namespaced_pod(NS, pod)
    assert created.metadata.name.startswith("gen-")
    assert len(created.metadata.name) == len("gen-") + 5


def test_list_pages_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_pod(NS, make_pod(f"p{i}"))
    first = core.list_namespaced_pod(NS, limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    second = core.list_namespaced_pod(NS, limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in second.items] == ["p2", "p3"]


def _status(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, object]:
    import json

    return json.loads(exc.value.body)


@pytest.mark.parametrize(
    ("call", "want_message"),
    [
        pytest.param(
            lambda core, batch: core.read_namespaced_pod("ghost", NS),
            'pods "ghost" not found',
            id="missing-pod",
        ),
        pytest.param(
            lambda core, batch: batch.read_namespaced_job("ghost", NS),
            'jobs.batch "ghost" not found',
            id="missing-job-names-its-group",
        ),
        pytest.param(
            lambda core, batch: core.read_node("tesla-99"),
            'nodes "tesla-99" not found',
            id="missing-node",
        ),
        pytest.param(
            lambda core, batch: core.create_namespaced_pod("nowhere", make_pod("p")),
            'namespaces "nowhere" not found',
            id="create-in-missing-namespace",
        ),
        pytest.param(
            lambda core, batch: core.delete_namespaced_pod("ghost", NS),
            'pods "ghost" not found',
            id="delete-missing-pod",
        ),
    ],
)
def test_not_found_is_a_404_status(core, batch, call, want_message) -> None:
    with pytest.raises(ApiException) as exc:
        call(core, batch)
    assert exc.value.status == 404
    body = _status(exc)
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["reason"] == "NotFound"
    assert body["message"] == want_message


def test_creating_twice_is_409_already_exists(batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job(NS, make_job("j1"))
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, make_job("j1"))
    assert exc.value.status == 409
    assert _status(exc)["reason"] == "AlreadyExists"
    assert _status(exc)["message"] == 'jobs.batch "j1" already exists'


def _job_without_containers() -> client.V1Job:
    job = make_job("empty")
    job.spec.template.spec.containers = []
    return job


def _job_with_restart_always() -> client.V1Job:
    return make_job("always", restart_policy="Always")


def _job_with_half_gpu() -> client.V1Job:
    job = make_job("half")
    job.spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"] = "0.5"
    return job


def _job_with_bad_label() -> client.V1Job:
    job = make_job("bad-label")
    job.metadata.labels = {"team": "has spaces!"}
    return job


def _job_with_long_name() -> client.V1Job:
    return make_job("j" * 64)


@pytest.mark.parametrize(
    ("build", "want_field"),
    [
        pytest.param(_job_without_containers, "spec.template.spec.containers", id="no-containers"),
        pytest.param(
            _job_with_restart_always, "spec.template.spec.restartPolicy", id="restart-always"
        ),
        pytest.param(_job_with_half_gpu, "nvidia.com/gpu", id="fractional-gpu"),
        pytest.param(_job_with_bad_label, "metadata.labels", id="bad-label-value"),
        pytest.param(_job_with_long_name, "metadata.name", id="name-longer-than-a-label"),
    ],
)
def test_invalid_job_is_422(batch: client.BatchV1Api, build, want_field: str) -> None:
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, build())
    assert exc.value.status == 422
    body = _status(exc)
    assert body["reason"] == "Invalid"
    assert any(want_field in c["field"] for c in body["details"]["causes"]), body


def test_pod_without_name_is_422(core: client.CoreV1Api) -> None:
    pod = make_pod("x")
    pod.metadata = client.V1ObjectMeta()
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(NS, pod)
    assert exc.value.status == 422
    assert _status(exc)["details"]["causes"][0]["field"] == "metadata.name"


def test_job_gets_selector_and_controller_labels_on_its_template(batch: client.BatchV1Api) -> None:
    job = batch.create_namespaced_job(NS, make_job("j1"))
    uid = job.metadata.uid
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = job.spec.template.metadata.labels
    assert labels["job-name"] == "j1"
    assert labels["controller-uid"] == uid
    assert labels["app"] == "train"
    assert job.spec.backoff_limit == 0
    assert job.spec.completions == 1
    assert job.spec.suspend is False


def test_deleting_a_pod_returns_it_and_it_is_gone(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, make_pod("p1"))
    deleted = core.delete_namespaced_pod("p1", NS)
    assert deleted.metadata.name == "p1"
    assert core.list_namespaced_pod(NS).items == []


def test_deleting_a_namespace_deletes_what_is_in_it(
    emulator, core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="scratch")))
    core.create_namespaced_pod("scratch", make_pod("p1"))
    batch.create_namespaced_job("scratch", make_job("j1"))
    emulator.settle()
    core.delete_namespace("scratch")
    # Terminating while its pods end their grace period; no new content meanwhile
    assert core.read_namespace("scratch").status.phase == "Terminating"
    assert batch.list_job_for_all_namespaces().items == []
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod("scratch", make_pod("late"))
    assert refused.value.status == 403
    assert "because it is being terminated" in refused.value.body
    emulator.advance(30)
    assert core.list_pod_for_all_namespaces(field_selector="metadata.namespace=scratch").items == []
    with pytest.raises(ApiException) as exc:
        core.read_namespace("scratch")
    assert exc.value.status == 404


def test_discovery_and_version(api_client: client.ApiClient) -> None:
    version = client.VersionApi(api_client).get_code()
    assert version.major == "1"
    groups = client.ApisApi(api_client).get_api_versions()
    assert [g.name for g in groups.groups] == [
        "apps",
        "batch",
        "resource.k8s.io",
        "authorization.k8s.io",
    ]
