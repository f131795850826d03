"""Dynamic Resource Allocation (``resource.k8s.io/v1``) in the emulator: the NVIDIA driver's
ResourceSlices, claims allocated to exactly the devices their CEL selectors name, one device
never in two claims, release when the claim or the pod goes, and 422 for what the emulator
cannot evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from kube_emulator import dra
from nodeagent.simulated import SimulatedSource

from .conftest import NS

RESOURCE = "resource.k8s.io"


def _uuid_claim(name: str, uuids: list[str]) -> dict:
    quoted = ", ".join(f'"{u}"' for u in uuids)
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name},
        "spec": {
            "devices": {
                "requests": [
                    {
                        "name": "gpus",
                        "exactly": {
                            "deviceClassName": "gpu.nvidia.com",
                            "count": len(uuids),
                            "selectors": [
                                {
                                    "cel": {
                                        "expression": 'device.attributes["gpu.nvidia.com"].uuid'
                                        f" in [{quoted}]"
                                    }
                                }
                            ],
                        },
                    }
                ]
            }
        },
    }


def _claim_pod(name: str, claim: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"karimasu.io/sim-duration-seconds": "inf"}},
        "spec": {
            "restartPolicy": "Never",
            "resourceClaims": [{"name": "gpus", "resourceClaimName": claim}],
            "containers": [
                {
                    "name": "main",
                    "image": "registry.local/train:1",
                    "resources": {"claims": [{"name": "gpus"}]},
                }
            ],
        },
    }


@pytest.fixture
def resource(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def _create_claim(resource: client.CustomObjectsApi, body: dict) -> dict:
    return resource.create_namespaced_custom_object(RESOURCE, "v1", NS, "resourceclaims", body)


def _claim(resource: client.CustomObjectsApi, name: str) -> dict:
    return resource.get_namespaced_custom_object(RESOURCE, "v1", NS, "resourceclaims", name)


def test_the_driver_publishes_one_slice_per_node_with_the_agents_uuids(
    emulator, api_client
) -> None:
    api = client.ResourceV1Api(api_client)
    slices = api.list_resource_slice().items
    assert sorted(s.spec.node_name for s in slices) == [f"tesla-0{i}" for i in range(1, 5)]
    one = next(s for s in slices if s.spec.node_name == "tesla-02")
    assert (one.spec.driver, one.spec.pool.name) == ("gpu.nvidia.com", "tesla-02")
    assert [d.name for d in one.spec.devices] == ["gpu-0", "gpu-1"]
    device = one.spec.devices[1]
    assert device.attributes["index"].int == 1
    assert device.attributes["productName"].string == "Tesla-V100-SXM2-16GB"
    # The simulated node agent reports the same UUID for this GPU (telemetry and DRA agree).
    source = SimulatedSource("tesla-02", api_client=api_client)
    from datetime import UTC, datetime

    reading = source.read(datetime.now(tz=UTC))
    assert device.attributes["uuid"].string == reading.gpus[1].uuid
    assert [c.metadata.name for c in api.list_device_class().items] == ["gpu.nvidia.com"]


def test_a_claim_for_an_exact_uuid_gets_that_device_and_the_pod_its_node(
    emulator, core, resource
) -> None:
    wanted = dra.gpu_uuid("tesla-03", 1)
    _create_claim(resource, _uuid_claim("c1", [wanted]))
    core.create_namespaced_pod(NS, _claim_pod("p1", "c1"))
    emulator.settle()
    claim = _claim(resource, "c1")
    results = claim["status"]["allocation"]["devices"]["results"]
    assert results == [
        {"request": "gpus", "driver": "gpu.nvidia.com", "pool": "tesla-03", "device": "gpu-1"}
    ]
    pod = core.read_namespaced_pod("p1", NS)
    assert pod.spec.node_name == "tesla-03"
    assert pod.status.phase == "Running"
    assert [x["uid"] for x in claim["status"]["reservedFor"]] == [pod.metadata.uid]
    assert pod.metadata.annotations["karimasu.io/gpu-indices"] == "1"
    with emulator.store.lock:
        env = dra.device_env(emulator.store, emulator.store.get(dra.r.PODS, NS, "p1"))
    assert env == {"NVIDIA_VISIBLE_DEVICES": wanted, "CUDA_VISIBLE_DEVICES": "0"}


def test_two_claims_for_one_device_leave_the_second_pod_pending(emulator, core, resource) -> None:
    wanted = dra.gpu_uuid("tesla-01", 0)
    _create_claim(resource, _uuid_claim("first", [wanted]))
    _create_claim(resource, _uuid_claim("second", [wanted]))
    core.create_namespaced_pod(NS, _claim_pod("p-first", "first"))
    emulator.settle()
    core.create_namespaced_pod(NS, _claim_pod("p-second", "second"))
    emulator.settle()
    second = core.read_namespaced_pod("p-second", NS)
    assert second.spec.node_name is None and second.status.phase == "Pending"
    assert "cannot allocate all claims" in second.status.conditions[0].message
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=p-second").items
    assert [e.reason for e in events] == ["FailedScheduling"]
    assert "allocation" not in _claim(resource, "second")["status"]

    # The first claim deleted (its pod gone): the device is free and the second pod runs.
    core.delete_namespaced_pod("p-first", NS, grace_period_seconds=0)
    resource.delete_namespaced_custom_object(RESOURCE, "v1", NS, "resourceclaims", "first")
    emulator.settle()
    second = core.read_namespaced_pod("p-second", NS)
    assert (second.spec.node_name, second.status.phase) == ("tesla-01", "Running")


def test_a_claim_no_pod_uses_any_more_is_deallocated(emulator, core, resource) -> None:
    _create_claim(resource, _uuid_claim("c", [dra.gpu_uuid("tesla-02", 0)]))
    core.create_namespaced_pod(NS, _claim_pod("p", "c"))
    emulator.settle()
    assert _claim(resource, "c")["status"]["allocation"]
    core.delete_namespaced_pod("p", NS, grace_period_seconds=0)
    emulator.settle()
    assert _claim(resource, "c")["status"] == {}


def test_a_pod_whose_claim_does_not_exist_waits(emulator, core) -> None:
    core.create_namespaced_pod(NS, _claim_pod("p", "missing"))
    emulator.settle()
    pod = core.read_namespaced_pod("p", NS)
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    assert 'resourceclaim.resource.k8s.io "missing" not found' in pod.status.conditions[0].message


def test_a_device_plugin_pods_gpu_is_not_given_to_a_claim(emulator, resource, core) -> None:
    # The default cluster's foreign notebook holds GPU 1 of tesla-04 through the device plugin.
    _create_claim(resource, _uuid_claim("c", [dra.gpu_uuid("tesla-04", 1)]))
    core.create_namespaced_pod(NS, _claim_pod("p", "c"))
    emulator.settle()
    assert core.read_namespaced_pod("p", NS).spec.node_name is None


@pytest.mark.parametrize(
    "expression",
    [
        'device.attributes["gpu.nvidia.com"].uuid.startsWith("GPU-")',  # a function
        "request.count > 1",  # an unknown variable
        'device.attributes["gpu.nvidia.com"].uuid ==',  # a syntax error
    ],
)
def test_a_selector_the_emulator_cannot_evaluate_is_refused(emulator, resource, expression):
    body = _uuid_claim("bad", ["x"])
    body["spec"]["devices"]["requests"][0]["exactly"]["selectors"] = [
        {"cel": {"expression": expression}}
    ]
    with pytest.raises(client.ApiException) as caught:
        _create_claim(resource, body)
    assert caught.value.status == 422
    assert "spec.devices.requests[0].exactly.selectors[0].cel.expression" in caught.value.body
    assert "compilation failed" in caught.value.body


def test_a_claims_spec_is_immutable(emulator, resource) -> None:
    _create_claim(resource, _uuid_claim("c", [dra.gpu_uuid("tesla-01", 0)]))
    with pytest.raises(client.ApiException) as caught:
        resource.patch_namespaced_custom_object(
            RESOURCE, "v1", NS, "resourceclaims", "c", {"spec": {"devices": {"requests": []}}}
        )
    assert caught.value.status == 422


def test_a_claim_owned_by_a_deleted_job_is_collected(emulator, batch, resource) -> None:
    from .conftest import make_job

    job = batch.create_namespaced_job(NS, make_job("owner", gpus=0))
    body = _uuid_claim("owned", [dra.gpu_uuid("tesla-01", 0)])
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "owner", "uid": job.metadata.uid}
    ]
    _create_claim(resource, body)
    emulator.settle()
    assert _claim(resource, "owned")
    batch.delete_namespaced_job("owner", NS, propagation_policy="Background")
    emulator.settle()
    with pytest.raises(client.ApiException) as caught:
        _claim(resource, "owned")
    assert caught.value.status == 404


@pytest.mark.parametrize("nodes_file", ["no-dra"], indirect=True)
def test_a_cluster_without_dra_publishes_nothing(api_client) -> None:
    api = client.ResourceV1Api(api_client)
    assert api.list_resource_slice().items == []
    assert api.list_device_class().items == []


@pytest.fixture
def nodes_file(request, tmp_path: Path) -> Path | None:
    if getattr(request, "param", None) == "no-dra":
        path = tmp_path / "nodes.yaml"
        path.write_text("nodes:\n  - {name: plain-01, gpus: 2, dra: false}\n", encoding="utf-8")
        return path
    return None


def test_the_cel_subset() -> None:
    device = {
        "name": "gpu-0",
        "attributes": {"uuid": {"string": "GPU-a"}, "index": {"int": 0}},
        "capacity": {},
    }

    def holds(expression: str) -> bool:
        return dra.evaluate(dra.compile_cel(expression), device, "gpu.nvidia.com")

    assert holds('device.driver == "gpu.nvidia.com"')
    assert holds('device.attributes["gpu.nvidia.com"].uuid == "GPU-a"')
    assert holds("device.attributes[\"gpu.nvidia.com\"]['index'] in [0, 1]")
    assert not holds('device.attributes["gpu.nvidia.com"].uuid == "GPU-b"')
    assert holds(
        '(device.attributes["gpu.nvidia.com"].index == 3 || device.driver == "gpu.nvidia.com")'
        ' && device.attributes["gpu.nvidia.com"].index < 1'
    )
    assert not holds('device.attributes["other.com"].uuid == "GPU-a"')  # another domain


def test_quotes_inside_cel_strings_stay_inside() -> None:
    device = {"name": "gpu-0", "attributes": {"uuid": {"string": 'GPU-"x'}}}
    escaped = dra.compile_cel('device.attributes["gpu.nvidia.com"].uuid in ["GPU-\\"x"]')
    assert dra.evaluate(escaped, device, "gpu.nvidia.com")
    single = dra.compile_cel("device.attributes['gpu.nvidia.com'].uuid == 'GPU-\"x'")
    assert dra.evaluate(single, device, "gpu.nvidia.com")
    # What Karimasu writes for a hostile UUID selects that UUID and nothing else.
    hostile = dra.compile_cel(
        'device.attributes["gpu.nvidia.com"].uuid in ["GPU-\\"] || true || [\\""]'
    )
    assert not dra.evaluate(hostile, device, "gpu.nvidia.com")


def test_a_claim_deleted_while_its_pod_runs_waits_for_the_pod(emulator, core, resource) -> None:
    wanted = dra.gpu_uuid("tesla-02", 1)
    _create_claim(resource, _uuid_claim("busy", [wanted]))
    core.create_namespaced_pod(NS, _claim_pod("user", "busy"))
    emulator.settle()
    assert _claim(resource, "busy")["metadata"]["finalizers"] == [dra.PROTECTION]
    resource.delete_namespaced_custom_object(RESOURCE, "v1", NS, "resourceclaims", "busy")
    emulator.settle()
    claim = _claim(resource, "busy")  # still there, being deleted, still holding the device
    assert claim["metadata"]["deletionTimestamp"] and claim["status"]["allocation"]
    _create_claim(resource, _uuid_claim("next", [wanted]))
    core.create_namespaced_pod(NS, _claim_pod("waiting", "next"))
    emulator.settle()
    assert core.read_namespaced_pod("waiting", NS).spec.node_name is None
    core.delete_namespaced_pod("user", NS, grace_period_seconds=0)
    emulator.settle()
    with pytest.raises(client.ApiException):
        _claim(resource, "busy")
    assert core.read_namespaced_pod("waiting", NS).spec.node_name == "tesla-02"
