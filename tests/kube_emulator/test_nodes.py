"""Nodes: the nodes file, and nodes lost or removed under running Pods."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from kube_emulator.nodes import NodesFileError, load_cluster_spec

from .conftest import NS, condition, job_pods, make_job, make_pod


def test_lost_node_fails_its_pods_and_the_job_retries_elsewhere(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("survivor", duration=100, backoff_limit=1))
    emulator.settle()
    [pod] = job_pods(core, "survivor")
    lost = pod.spec.node_name

    emulator.controller.lose_node(lost)
    emulator.settle()

    node = core.read_node(lost)
    assert condition(node, "Ready").status == "Unknown"
    assert any(t.key == "node.kubernetes.io/unreachable" for t in node.spec.taints)
    [failed] = job_pods(core, "survivor")
    assert (failed.status.phase, failed.status.reason) == ("Failed", "NodeLost")
    assert condition(failed, "DisruptionTarget").status == "True"

    emulator.advance(10)  # back-off, then a replacement lands on a node that answers
    pods = job_pods(core, "survivor")
    replacement = [p for p in pods if p.status.phase == "Running"]
    assert len(replacement) == 1
    assert replacement[0].spec.node_name != lost


def test_removed_node_disappears_and_its_pods_fail(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("orphaned", duration=100))
    emulator.settle()
    node = job_pods(core, "orphaned")[0].spec.node_name
    emulator.controller.remove_node(node)
    assert node not in [n.metadata.name for n in core.list_node().items]
    assert job_pods(core, "orphaned")[0].status.reason == "NodeLost"


def test_restored_node_takes_pods_again(emulator, core, batch) -> None:
    for name in ("tesla-01", "tesla-02", "tesla-03"):
        core.patch_node(name, {"spec": {"unschedulable": True}})
    emulator.controller.lose_node("tesla-04")
    batch.create_namespaced_job(NS, make_job("waiting"))
    emulator.settle()
    [pod] = job_pods(core, "waiting")
    message = condition(pod, "PodScheduled").message
    assert "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }" in message
    assert "3 node(s) were unschedulable" in message

    emulator.controller.restore_node("tesla-04")
    emulator.settle()
    node = core.read_node("tesla-04")
    assert condition(node, "Ready").status == "True"
    assert not node.spec.taints
    [pod] = job_pods(core, "waiting")
    assert (pod.status.phase, pod.spec.node_name) == ("Running", "tesla-04")


def test_custom_nodes_file(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(
        """
namespaces: [team-a]
defaults: {gpus: 8, gpu_product: Tesla-A100-SXM4-80GB, gpu_memory_mib: 81920}
nodes:
  - name: a100-01
    labels: {rack: r1}
    taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
  - name: cpu-01
    gpus: 0
    unschedulable: true
""",
        encoding="utf-8",
    )
    spec = load_cluster_spec(path)
    assert spec.namespaces == ["team-a"]
    gpu_node, cpu_node = spec.nodes
    assert gpu_node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert gpu_node["metadata"]["labels"]["nvidia.com/gpu.product"] == "Tesla-A100-SXM4-80GB"
    assert gpu_node["metadata"]["labels"]["rack"] == "r1"
    assert gpu_node["spec"]["taints"][0]["key"] == "nvidia.com/gpu"
    assert "nvidia.com/gpu" not in cpu_node["status"]["allocatable"]
    assert cpu_node["spec"]["unschedulable"] is True


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("nodes: {a: 1}", id="nodes-not-a-list"),
        pytest.param("nodes: [{gpus: 2}]", id="node-without-name"),
        pytest.param("nodes: [{name: a}, {name: a}]", id="duplicate-name"),
        pytest.param("nodes: [", id="not-yaml"),
    ],
)
def test_bad_nodes_file_is_rejected(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(NodesFileError):
        load_cluster_spec(path)


def test_node_registered_through_the_api_is_not_ready_for_pods(emulator, core) -> None:
    node = client.V1Node(metadata=client.V1ObjectMeta(name="extra-01", labels={"a": "b"}))
    core.create_node(node)
    assert [n.metadata.name for n in core.list_node(label_selector="a=b").items] == ["extra-01"]
    pinned = make_pod("pinned", node_selector={"kubernetes.io/hostname": "extra-01"})
    core.create_namespaced_pod(NS, pinned)
    emulator.settle()
    message = condition(core.read_namespaced_pod("pinned", NS), "PodScheduled").message
    assert "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }" in message
