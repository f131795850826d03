"""DaemonSets (apps/v1) and the default cluster's Pods that Karimasu did not create."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from kube_emulator import FakeClock, start_emulator
from kube_emulator import resources as r
from kube_emulator.scheduling import node_usage

from .conftest import NS, job_pods, make_job

GPU = "nvidia.com/gpu"


def _daemonset(name: str, **pod_spec: object) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"karimasu.io/sim-duration-seconds": "inf"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "agent",
                            "image": "registry.local/agent:1",
                            "resources": {"requests": {"cpu": "200m", "memory": "100Mi"}},
                        }
                    ],
                    **pod_spec,
                },
            },
        },
    }


def _ds_pods(core: client.CoreV1Api, name: str) -> list[client.V1Pod]:
    return core.list_pod_for_all_namespaces(label_selector=f"app={name}").items


def test_the_default_cluster_runs_daemons_on_every_node_and_a_foreign_notebook(
    emulator, core
) -> None:
    pods = core.list_pod_for_all_namespaces().items
    by_node: dict[str, list[str]] = {}
    for pod in pods:
        assert pod.status.phase == "Running"
        by_node.setdefault(pod.spec.node_name, []).append(pod.metadata.name.rsplit("-", 1)[0])
    assert sorted(by_node) == ["tesla-01", "tesla-02", "tesla-03", "tesla-04"]
    for node, names in by_node.items():
        want = ["kube-proxy", "nvidia-device-plugin-daemonset"]
        assert sorted(n for n in names if n != "notebook") == want, node
    notebook = core.read_namespaced_pod("notebook-0", "research")
    assert notebook.spec.node_name == "tesla-04"
    assert notebook.spec.containers[0].resources.limits[GPU] == "1"
    emulator.advance(3600, step=60)  # they run until stopped
    assert all(p.status.phase == "Running" for p in core.list_pod_for_all_namespaces().items)
    daemonsets = client.AppsV1Api(core.api_client).list_namespaced_daemon_set("kube-system")
    status = {d.metadata.name: d.status for d in daemonsets.items}
    assert (status["kube-proxy"].desired_number_scheduled, status["kube-proxy"].number_ready) == (
        4,
        4,
    )


def test_the_scheduler_counts_foreign_pods(emulator, core, batch) -> None:
    # tesla-04 has one GPU left: a 2-GPU job pinned there cannot bind, a 1-GPU job can.
    for name, gpus in (("two", 2), ("one", 1)):
        job = make_job(name, gpus=gpus)
        job.spec.template.spec.node_selector = {"kubernetes.io/hostname": "tesla-04"}
        batch.create_namespaced_job(NS, job)
    emulator.settle()
    [two] = job_pods(core, "two")
    [one] = job_pods(core, "one")
    assert two.status.phase == "Pending"
    assert "Insufficient nvidia.com/gpu" in two.status.conditions[0].message
    assert (one.status.phase, one.spec.node_name) == ("Running", "tesla-04")


def test_daemonset_over_the_api_follows_nodes_selectors_and_taints(emulator, core) -> None:
    apps = client.AppsV1Api(core.api_client)
    core.patch_node(
        "tesla-02", {"spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}}
    )
    core.patch_node("tesla-03", {"spec": {"unschedulable": True}})  # daemons tolerate cordons
    apps.create_namespaced_daemon_set(
        NS, _daemonset("agent", nodeSelector={"kubernetes.io/os": "linux"})
    )
    emulator.settle()
    pods = _ds_pods(core, "agent")
    assert sorted(p.spec.node_name for p in pods) == ["tesla-01", "tesla-03", "tesla-04"]
    for pod in pods:
        [owner] = pod.metadata.owner_references
        assert (owner.kind, owner.name) == ("DaemonSet", "agent")
        assert pod.status.qos_class == "Burstable"
        never_evicted = {
            t.key
            for t in pod.spec.tolerations
            if t.effect == "NoExecute" and t.toleration_seconds is None
        }
        assert never_evicted == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    status = apps.read_namespaced_daemon_set("agent", NS).status
    assert (status.desired_number_scheduled, status.current_number_scheduled) == (3, 3)

    emulator.controller.lose_node("tesla-01")
    emulator.advance(600, step=10)
    assert len([p for p in _ds_pods(core, "agent") if p.status.phase == "Running"]) == 3

    apps.delete_namespaced_daemon_set("agent", NS)  # apps/v1: Background by default
    emulator.settle()
    # the garbage collector deletes the Pods: they terminate for their grace period, as on a
    # real cluster (the test assumed they vanish at once, which no cluster does)
    assert all(p.metadata.deletion_timestamp is not None for p in _ds_pods(core, "agent"))
    emulator.advance(30)
    assert _ds_pods(core, "agent") == []


@pytest.mark.parametrize(
    ("policy", "owner_waits", "pods_stay"),
    [
        pytest.param("Foreground", True, False, id="foreground-deletes-pods-first"),
        pytest.param("Orphan", False, True, id="orphan-keeps-pods-without-owner"),
    ],
)
def test_deleting_a_daemonset_follows_propagation_policy(
    emulator, core, policy, owner_waits, pods_stay
) -> None:
    apps = client.AppsV1Api(core.api_client)
    apps.create_namespaced_daemon_set(NS, _daemonset("agent"))
    emulator.settle()
    assert len(_ds_pods(core, "agent")) == 4
    apps.delete_namespaced_daemon_set("agent", NS, propagation_policy=policy)
    emulator.settle()
    waiting = apps.list_namespaced_daemon_set(NS).items
    assert [d.metadata.finalizers for d in waiting] == (
        [["foregroundDeletion"]] if owner_waits else []
    )
    emulator.advance(30)
    pods = _ds_pods(core, "agent")
    assert len(pods) == (4 if pods_stay else 0)
    assert not any(p.metadata.owner_references for p in pods)
    assert apps.list_namespaced_daemon_set(NS).items == []


def test_daemonset_without_a_matching_selector_is_refused(core) -> None:
    body = _daemonset("bad")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(client.ApiException) as caught:
        client.AppsV1Api(core.api_client).create_namespaced_daemon_set(NS, body)
    assert caught.value.status == 422


def test_nodes_file_daemonsets_and_pods_hold_resources(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(
        """
nodes:
  - {name: small-01, gpus: 1, cpu: "4", memory: 16Gi}
daemonsets:
  - {name: logger, requests: {cpu: "1", memory: 1Gi}}
pods:
  - {name: squatter, namespace: lab, node: small-01, requests: {nvidia.com/gpu: 1}}
""",
        encoding="utf-8",
    )
    with start_emulator(clock=FakeClock(), nodes_file=path) as emulator:
        pods = emulator.store.list(r.PODS)
        names = sorted(
            (p["metadata"]["namespace"], p["metadata"]["name"].rsplit("-", 1)[0]) for p in pods
        )
        assert names == [("kube-system", "logger"), ("lab", "squatter")]
        used = node_usage("small-01", pods)
        assert (used["cpu"], used[GPU], used["memory"]) == (1, 1, 2**30)
