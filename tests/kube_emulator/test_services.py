"""v1 Services (what a multi-node job's headless Service needs) and required pod
anti-affinity (one pod of a gang per node)."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import NS, job_pods, make_job


def _service(name: str, cluster_ip: str | None = "None", port: int = 29500) -> dict:
    spec: dict = {"selector": {"app": "train"}, "ports": [{"name": "r", "port": port}]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def test_a_headless_service_is_stored_listed_and_deleted(emulator, core) -> None:
    created = core.create_namespaced_service(NS, _service("ddp"))
    assert (created.spec.cluster_ip, created.spec.type) == ("None", "ClusterIP")
    assert created.spec.ports[0].protocol == "TCP"
    plain = core.create_namespaced_service(NS, _service("web", cluster_ip=None))
    assert plain.spec.cluster_ip.startswith("10.96.")
    names = {s.metadata.name for s in core.list_namespaced_service(NS).items}
    assert names == {"ddp", "web"}
    headless = core.list_namespaced_service(NS, field_selector="spec.clusterIP=None").items
    assert [s.metadata.name for s in headless] == ["ddp"]
    with pytest.raises(ApiException) as taken:
        core.create_namespaced_service(NS, _service("ddp"))
    assert taken.value.status == 409
    core.delete_namespaced_service("ddp", NS)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_service("ddp", NS)
    assert gone.value.status == 404


def test_a_service_with_a_bad_port_is_refused(emulator, core) -> None:
    with pytest.raises(ApiException) as bad:
        core.create_namespaced_service(NS, _service("ddp", port=70000))
    assert bad.value.status == 422 and "spec.ports[0].port" in bad.value.body


def test_a_service_owned_by_a_job_goes_with_it(emulator, core, batch) -> None:
    job = batch.create_namespaced_job(NS, make_job("owner", duration=60))
    body = _service("owner")
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "owner", "uid": job.metadata.uid}
    ]
    core.create_namespaced_service(NS, body)
    batch.delete_namespaced_job("owner", NS, propagation_policy="Background")
    emulator.settle()
    assert core.list_namespaced_service(NS).items == []


def test_required_pod_anti_affinity_keeps_a_gang_one_pod_per_node(emulator, core, batch) -> None:
    job = make_job("gang", gpus=1, duration=60)
    job.spec.completion_mode = "Indexed"
    job.spec.completions = job.spec.parallelism = 3
    job.spec.template.spec.affinity = client.V1Affinity(
        pod_anti_affinity=client.V1PodAntiAffinity(
            required_during_scheduling_ignored_during_execution=[
                client.V1PodAffinityTerm(
                    label_selector=client.V1LabelSelector(match_labels={"app": "train"}),
                    topology_key="kubernetes.io/hostname",
                )
            ]
        )
    )
    batch.create_namespaced_job(NS, job)
    emulator.settle()
    pods = job_pods(core, "gang")
    # Without the anti-affinity, bin packing would put two 1-GPU pods on one 2-GPU node.
    assert len({p.spec.node_name for p in pods}) == 3
