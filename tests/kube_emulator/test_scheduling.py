"""The simulated scheduler: GPU accounting, pinning, cordon, taints, FailedScheduling."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kube_emulator.nodes import node_object
from kube_emulator.scheduling import choose_node, unschedulable_message

from .conftest import NS, condition, job_pods, make_job


@pytest.fixture
def nodes_file(one_node_file: Path) -> Path:
    """Every test here runs on one node with 2 GPUs."""
    return one_node_file


def test_third_one_gpu_job_on_a_full_two_gpu_node_stays_pending(emulator, core, batch) -> None:
    for name in ("first", "second", "third"):
        batch.create_namespaced_job(NS, make_job(name, gpus=1, duration=60))
        emulator.settle()
    assert job_pods(core, "first")[0].status.phase == "Running"
    assert job_pods(core, "second")[0].status.phase == "Running"
    [pending] = job_pods(core, "third")
    assert pending.status.phase == "Pending"
    assert pending.spec.node_name is None
    scheduled = condition(pending, "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert scheduled.message.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    events = core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={pending.metadata.name},reason=FailedScheduling"
    ).items
    assert len(events) == 1
    assert events[0].type == "Warning"
    assert events[0].message == scheduled.message

    emulator.advance(60)  # the first two finish and free their GPUs
    [third] = job_pods(core, "third")
    assert third.status.phase == "Running"
    assert third.spec.node_name == "solo-01"


def test_a_two_gpu_job_waits_for_both_gpus(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("small", gpus=1, duration=30))
    emulator.settle()
    batch.create_namespaced_job(NS, make_job("big", gpus=2, duration=30))
    emulator.settle()
    assert job_pods(core, "big")[0].status.phase == "Pending"
    emulator.advance(30)
    assert job_pods(core, "big")[0].status.phase == "Running"


def test_cordoned_node_takes_no_new_pods(emulator, core, batch) -> None:
    core.patch_node("solo-01", {"spec": {"unschedulable": True}})
    batch.create_namespaced_job(NS, make_job("blocked"))
    emulator.settle()
    [pod] = job_pods(core, "blocked")
    assert "1 node(s) were unschedulable" in condition(pod, "PodScheduled").message
    core.patch_node("solo-01", {"spec": {"unschedulable": False}})
    emulator.settle()
    assert job_pods(core, "blocked")[0].status.phase == "Running"


def test_pod_created_with_node_name_on_a_full_node_is_rejected(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("hog", gpus=2, duration=60))
    emulator.settle()
    job = make_job("pinned", gpus=1)
    job.spec.template.spec.node_name = "solo-01"
    batch.create_namespaced_job(NS, job)
    emulator.settle()
    rejected = job_pods(core, "pinned")[0]
    assert rejected.status.phase == "Failed"
    assert rejected.status.reason == "OutOfnvidia.com/gpu"


# -- the filters on their own ------------------------------------------------------------------

NODES = [node_object({"name": f"n{i}", "gpus": 2}, i) for i in (1, 2)]


def _pod(gpus: int = 1, **spec: object) -> dict[str, object]:
    container = {"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    return {"metadata": {"name": "p"}, "spec": {"containers": [container], **spec}, "status": {}}


def _running_on(node: str, gpus: int) -> dict[str, object]:
    pod = _pod(gpus, nodeName=node)
    pod["status"] = {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}]}
    return pod


def _hostname_affinity(name: str) -> dict[str, object]:
    expression = {"key": "kubernetes.io/hostname", "operator": "In", "values": [name]}
    terms = {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}


@pytest.mark.parametrize(
    ("pod", "running", "want_node", "want_reasons"),
    [
        pytest.param(_pod(1), [], "n1", None, id="empty-cluster-packs-onto-first-node"),
        pytest.param(_pod(1), [_running_on("n2", 1)], "n2", None, id="bin-packs-onto-half-full"),
        pytest.param(
            _pod(2),
            [_running_on("n1", 1), _running_on("n2", 1)],
            None,
            "2 Insufficient nvidia.com/gpu",
            id="no-node-has-two-free",
        ),
        pytest.param(
            _pod(1, affinity=_hostname_affinity("n2")),
            [],
            "n2",
            None,
            id="hostname-affinity-pins",
        ),
        pytest.param(
            _pod(1, affinity=_hostname_affinity("n2")),
            [_running_on("n2", 2)],
            None,
            "1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector",
            id="pinned-to-a-full-node",
        ),
        pytest.param(
            _pod(1, nodeSelector={"kubernetes.io/hostname": "n9"}),
            [],
            None,
            "2 node(s) didn't match Pod's node affinity/selector",
            id="selector-matches-nothing",
        ),
    ],
)
def test_choose_node(pod, running, want_node, want_reasons) -> None:
    node, message = choose_node(pod, NODES, running)
    assert node == want_node
    if want_reasons is not None:
        assert message.startswith(f"0/2 nodes are available: {want_reasons}.")


def test_taints_need_tolerations() -> None:
    tainted = node_object(
        {"name": "t", "gpus": 2, "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}
    )
    node, message = choose_node(_pod(1), [tainted], [])
    assert node is None
    assert "1 node(s) had untolerated taint {nvidia.com/gpu: }" in message
    tolerant = _pod(1, tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}])
    assert choose_node(tolerant, [tainted], [])[0] == "t"


def test_unschedulable_message_reads_like_upstream() -> None:
    message = unschedulable_message(4, Counter({"Insufficient nvidia.com/gpu": 4}), 4)
    assert message == (
        "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are "
        "available: 4 No preemption victims found for incoming pod."
    )


def test_preemption_summary_separates_nodes_where_it_cannot_help() -> None:
    _, message = choose_node(
        _pod(1, affinity=_hostname_affinity("n2")), NODES, [_running_on("n2", 2)]
    )
    assert message.endswith(
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling."
    )
