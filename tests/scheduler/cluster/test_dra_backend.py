"""The GPUs booked are the GPUs used (issue 16): on a cluster with Dynamic Resource Allocation
each attempt's pod takes exactly the devices Karimasu placed it on, through a ResourceClaim
naming their UUIDs; without DRA the pod asks for a count, as before."""

from __future__ import annotations

import pytest
from django.utils import timezone
from kubernetes import client

from kube_emulator.dra import gpu_uuid
from scheduler import states
from scheduler.cluster import dra
from scheduler.models import Gpu, Node
from scheduler.services.inventory import sync_inventory
from scheduler.services.jobs import job_spec
from scheduler.services.reconcile import reconcile

pytestmark = pytest.mark.django_db
NS = "karimasu-jobs"


def _claims(backend) -> list[dict]:
    api = client.CustomObjectsApi(backend.api_client)
    return api.list_namespaced_custom_object("resource.k8s.io", "v1", NS, "resourceclaims")["items"]


def _pod(backend, job) -> client.V1Pod:
    pods = client.CoreV1Api(backend.api_client).list_namespaced_pod(
        NS, label_selector=f"karimasu.io/job-id={job.pk}"
    )
    assert len(pods.items) == 1
    return pods.items[0]


def test_the_inventory_records_dra_nodes_and_the_drivers_uuids(synced):
    node = Node.objects.get(name="tesla-02")
    assert node.gpu_allocation == "dra"
    assert dict(node.gpus.values_list("index", "uuid")) == {
        0: gpu_uuid("tesla-02", 0),
        1: gpu_uuid("tesla-02", 1),
    }


def test_a_dra_job_carries_a_claim_naming_exactly_its_booked_gpus(make_admitted, backend, emulator):
    job = make_admitted(node="tesla-03", gpus=1, indices=(1,), duration=600)
    reconcile(backend, now=timezone.now())
    emulator.settle()

    (claim,) = _claims(backend)
    assert claim["metadata"]["name"] == f"karimasu-job-{job.pk}-a1-gpus"
    assert claim["metadata"]["ownerReferences"][0]["kind"] == "Job"
    (request,) = claim["spec"]["devices"]["requests"]
    expression = request["exactly"]["selectors"][0]["cel"]["expression"]
    assert (
        expression == f'device.attributes["gpu.nvidia.com"].uuid in ["{gpu_uuid("tesla-03", 1)}"]'
    )
    assert request["exactly"]["count"] == 1
    results = claim["status"]["allocation"]["devices"]["results"]
    assert [(r["pool"], r["device"]) for r in results] == [("tesla-03", "gpu-1")]

    pod = _pod(backend, job)
    assert pod.spec.node_name == "tesla-03"
    assert [c.resource_claim_name for c in pod.spec.resource_claims] == [claim["metadata"]["name"]]
    resources = pod.spec.containers[0].resources
    assert "nvidia.com/gpu" not in (resources.limits or {})
    assert [c.name for c in resources.claims] == ["gpus"]
    # The device the pod got is the one booked: GPU 1, not the lowest free (0).
    assert pod.metadata.annotations["karimasu.io/gpu-indices"] == "1"
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.RUNNING


def test_two_gpus_booked_on_one_node_are_both_named(make_admitted, backend, emulator):
    job = make_admitted(node="tesla-01", gpus=2, indices=(0, 1))
    reconcile(backend, now=timezone.now())
    emulator.settle()
    (claim,) = _claims(backend)
    expression = claim["spec"]["devices"]["requests"][0]["exactly"]["selectors"][0]["cel"][
        "expression"
    ]
    for index in (0, 1):
        assert gpu_uuid("tesla-01", index) in expression
    assert _pod(backend, job).spec.node_name == "tesla-01"


def test_a_gpu_without_a_known_uuid_is_selected_by_index_and_the_claim_says_so(
    make_admitted, backend, emulator
):
    Gpu.objects.filter(node__name="tesla-02", index=1).update(uuid="")
    job = make_admitted(node="tesla-02", gpus=1, indices=(1,), duration=600)
    reconcile(backend, now=timezone.now())
    emulator.settle()
    (claim,) = _claims(backend)
    assert claim["metadata"]["annotations"][dra.SELECTED_BY_ANNOTATION] == "index"
    results = claim["status"]["allocation"]["devices"]["results"]
    assert [(r["pool"], r["device"]) for r in results] == [("tesla-02", "gpu-1")]
    assert _pod(backend, job).spec.node_name == "tesla-02"


def test_a_gpu_booked_twice_leaves_the_second_pod_pending(make_admitted, backend, emulator):
    first = make_admitted(node="tesla-01", indices=(0,), duration=600)
    second = make_admitted(node="tesla-01", indices=(0,), duration=600)
    reconcile(backend, now=timezone.now())
    emulator.settle()
    reconcile(backend, now=timezone.now())
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == states.RUNNING
    assert (second.status, second.reason) == (states.STARTING, "unschedulable")
    assert "cannot allocate all claims" in second.message


def test_a_crash_between_the_job_and_its_claim_is_repaired_by_reconcile(
    make_admitted, backend, emulator
):
    job = make_admitted(node="tesla-02", indices=(0,), duration=600)
    # The Job created, then the process died before the claim: the pod waits for it.
    real = backend._ensure_claim
    backend._ensure_claim = lambda body: False
    backend.submit(job_spec(job))
    backend._ensure_claim = real
    emulator.settle()
    assert _claims(backend) == []
    assert _pod(backend, job).spec.node_name is None

    reconcile(backend, now=timezone.now())
    emulator.settle()
    (claim,) = _claims(backend)
    assert claim["metadata"]["name"] == f"karimasu-job-{job.pk}-a1-gpus"
    assert _pod(backend, job).spec.node_name == "tesla-02"
    # A resubmission finds both (409s) and creates nothing.
    assert backend.submit(job_spec(job)).created is False
    assert len(_claims(backend)) == 1


def test_cancelling_a_dra_job_leaves_no_claim(make_admitted, backend, emulator):
    job = make_admitted(node="tesla-01", indices=(1,), duration=600)
    reconcile(backend, now=timezone.now())
    emulator.settle()
    assert len(_claims(backend)) == 1
    backend.cancel(job.pk, job.attempt)
    emulator.advance(90)  # the pod's grace, then the garbage collector
    assert _claims(backend) == []


@pytest.mark.gpu_allocation("device-plugin")
def test_device_plugin_mode_asks_for_a_count_as_before(make_admitted, backend, emulator):
    assert set(Node.objects.values_list("gpu_allocation", flat=True)) == {"device-plugin"}
    job = make_admitted(node="tesla-01", gpus=1, indices=(1,), duration=600)
    reconcile(backend, now=timezone.now())
    emulator.settle()
    assert _claims(backend) == []
    pod = _pod(backend, job)
    assert pod.spec.resource_claims is None
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    # Telemetry credits the pod's processes to the job by its UID, wherever the kubelet put it.
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.pod_uids == [pod.metadata.uid]


@pytest.mark.nodes_file(
    "namespaces: [karimasu-jobs]\nnodes:\n  - {name: plain-01, gpus: 2, dra: false}\n"
)
def test_auto_without_dra_in_the_cluster_is_device_plugin(backend, db):
    sync_inventory(backend, now=timezone.now())
    assert Node.objects.get(name="plain-01").gpu_allocation == "device-plugin"


def test_a_dra_only_node_counts_the_drivers_devices(backend, emulator, db):
    """Without the device plugin a node advertises no nvidia.com/gpu: its GPUs are the
    devices the DRA driver publishes."""
    core = client.CoreV1Api(backend.api_client)
    for field in ("capacity", "allocatable"):
        core.patch_node_status(
            "tesla-01", [{"op": "remove", "path": f"/status/{field}/nvidia.com~1gpu"}]
        )
    sync_inventory(backend, now=timezone.now())
    node = Node.objects.get(name="tesla-01")
    assert (node.gpu_allocation, node.gpu_capacity, node.gpu_allocatable) == ("dra", 2, 2)
    assert sorted(node.gpus.values_list("index", flat=True)) == [0, 1]


def test_dra_objects_the_account_may_not_read_mean_per_count(backend, db, monkeypatch, caplog):
    from kubernetes.client.exceptions import ApiException

    def forbidden(*args, **kwargs):
        raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(backend.resource, "read_device_class", forbidden)
    sync_inventory(backend, now=timezone.now())
    assert set(Node.objects.values_list("gpu_allocation", flat=True)) == {"device-plugin"}
    assert "cluster.dra_unreadable 403" in caplog.text
