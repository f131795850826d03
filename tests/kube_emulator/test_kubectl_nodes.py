"""kubectl's node commands for real, which the conformance probes only dry-run (they would
disturb a shared cluster): cordon, uncordon, taint, drain (its deletes are protobuf)."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import config

from kube_emulator import start_emulator

from .conformance.conftest import Cluster, kubectl_minor


def _ok(result) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_cordon_taint_and_drain_a_node(tmp_path: Path) -> None:
    with start_emulator(kubeconfig_path=tmp_path / "kc", tick_interval=0.05) as handle:
        assert handle.kubeconfig_path is not None
        api_client = config.new_client_from_config(config_file=str(handle.kubeconfig_path))
        cluster = Cluster(
            handle.kubeconfig_path, "karimasu-jobs", api_client, False, tmp_path / "cache"
        )
        try:
            _ok(cluster.kubectl("cordon", "tesla-02"))
            status = _ok(cluster.kubectl("get", "node", "tesla-02")).splitlines()[1].split()[1]
            assert status == "Ready,SchedulingDisabled"
            _ok(cluster.kubectl("uncordon", "tesla-02"))
            _ok(cluster.kubectl("taint", "nodes", "tesla-02", "dedicated=ml:NoSchedule"))
            taints = cluster.kubectl("get", "node", "tesla-02", "-o", "jsonpath={.spec.taints}")
            assert json.loads(_ok(taints)) == [
                {"effect": "NoSchedule", "key": "dedicated", "value": "ml"}
            ]
            _ok(cluster.kubectl("taint", "nodes", "tesla-02", "dedicated-"))
            overrides = json.dumps({"spec": {"terminationGracePeriodSeconds": 1}})
            _ok(
                cluster.kubectl(
                    "run", "lonely", "--image=busybox:1.36", "--restart=Never",
                    f"--overrides={overrides}",
                )
            )  # fmt: skip
            node = cluster.wait_for(
                "the pod to be bound",
                lambda: (
                    cluster.kubectl(
                        "get", "pod", "lonely", "-o", "jsonpath={.spec.nodeName}"
                    ).stdout
                ),
            )
            # As on a real cluster, drain refuses DaemonSet Pods (kube-system) without
            # --ignore-daemonsets; --grace-period=1 spares the wait for a foreign pod's 30 s.
            drained = _ok(
                cluster.kubectl(
                    "drain", node, "--force", "--ignore-daemonsets", "--grace-period=1",
                    "--timeout=60s",
                )
            )  # fmt: skip
            # before 1.23 kubectl printed the node with its last pod's verb (kubernetes#105736)
            verb = "drained" if kubectl_minor() >= 23 else "deleted"
            assert f"node/{node} {verb}" in drained
            assert _ok(cluster.kubectl("get", "pods", "-o", "name")) == ""
        finally:
            api_client.close()
