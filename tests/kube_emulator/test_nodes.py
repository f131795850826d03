"""Nodes: the nodes file, and nodes lost or removed under running Pods."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from kube_emulator.nodes import NodesFileError, load_cluster_spec

from .conftest import NS, condition, job_pods, make_job, make_pod


def test_lost_node_evicts_its_pods_after_300_s_and_the_job_retries_elsewhere(
    emulator, core, batch
) -> None:
    batch.create_namespaced_job(NS, make_job("survivor", duration=1000, backoff_limit=1))
    emulator.settle()
    [pod] = job_pods(core, "survivor")
    lost = pod.spec.node_name
    defaults = {
        (t.key, t.effect, t.toleration_seconds)
        for t in pod.spec.tolerations
        if t.key.startswith("node.kubernetes.io/")
    }
    assert defaults == {
        ("node.kubernetes.io/not-ready", "NoExecute", 300),
        ("node.kubernetes.io/unreachable", "NoExecute", 300),
    }  # DefaultTolerationSeconds

    emulator.controller.lose_node(lost)
    emulator.settle()

    node = core.read_node(lost)
    assert condition(node, "Ready").status == "Unknown"
    assert {(t.key, t.effect) for t in node.spec.taints} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    }
    emulator.advance(299)
    assert job_pods(core, "survivor")[0].status.phase == "Running"  # still tolerated
    emulator.advance(1)
    [failed] = job_pods(core, "survivor")
    assert (failed.status.phase, failed.status.reason) == ("Failed", "NodeLost")
    disruption = condition(failed, "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "DeletionByTaintManager")
    evictions = [
        e.message
        for e in core.list_namespaced_event(NS).items
        if e.reason == "TaintManagerEviction"
    ]
    assert evictions == [f"Marking for deletion Pod {NS}/{failed.metadata.name}"]

    emulator.advance(10)  # back-off, then a replacement lands on a node that answers
    pods = job_pods(core, "survivor")
    replacement = [p for p in pods if p.status.phase == "Running"]
    assert len(replacement) == 1
    assert replacement[0].spec.node_name != lost


@pytest.mark.parametrize(
    ("tolerations", "evicted_after"),
    [
        pytest.param(
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 30,
                }
            ],
            30,
            id="own-toleration-seconds",
        ),
        pytest.param(
            [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
            None,
            id="tolerated-forever",
        ),
        pytest.param(None, 300, id="default-300"),
    ],
)
def test_not_ready_node_evicts_after_the_toleration(
    emulator, core, tolerations, evicted_after
) -> None:
    pod = make_pod("daemon", node_name="tesla-02")
    body = core.api_client.sanitize_for_serialization(pod)
    if tolerations is not None:
        body["spec"]["tolerations"] = tolerations
    core.create_namespaced_pod(NS, body)
    emulator.advance(5)
    emulator.controller.lose_node("tesla-02", condition="False")
    node = core.read_node("tesla-02")
    assert condition(node, "Ready").status == "False"
    assert ("node.kubernetes.io/not-ready", "NoExecute") in {
        (t.key, t.effect) for t in node.spec.taints
    }
    horizon = evicted_after or 900  # well past the 300 s default
    emulator.advance(horizon - 1, step=1 if evicted_after else 10)
    assert core.read_namespaced_pod("daemon", NS).status.phase == "Running"
    emulator.advance(1)
    phase = core.read_namespaced_pod("daemon", NS).status.phase
    assert phase == ("Failed" if evicted_after else "Running")


def test_pod_without_matching_toleration_is_evicted_at_once(emulator, core) -> None:
    body = core.api_client.sanitize_for_serialization(make_pod("plain", node_name="tesla-03"))
    core.create_namespaced_pod(NS, body)
    emulator.settle()
    core.patch_node(
        "tesla-03", {"spec": {"taints": [{"key": "maintenance", "effect": "NoExecute"}]}}
    )
    emulator.settle()
    pod = core.read_namespaced_pod("plain", NS)
    assert pod.status.phase == "Failed"
    assert condition(pod, "DisruptionTarget").reason == "DeletionByTaintManager"


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
