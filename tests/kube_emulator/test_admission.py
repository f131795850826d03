"""Admission of new Pods: the QoS class the kubelet computes, DefaultTolerationSeconds."""

from __future__ import annotations

import pytest

from .conftest import NS, job_pods, make_job


def _pod(name: str, *containers: dict, init: list[dict] | None = None) -> dict:
    spec: dict = {
        "containers": [
            {"name": f"c{i}", "image": "busybox:1.36", **c} for i, c in enumerate(containers)
        ]
    }
    if init is not None:
        spec["initContainers"] = [
            {"name": f"i{i}", "image": "busybox:1.36", **c} for i, c in enumerate(init)
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


CPU_MEM = {"cpu": "1", "memory": "1Gi"}


@pytest.mark.parametrize(
    ("containers", "init", "want"),
    [
        pytest.param([{}], None, "BestEffort", id="nothing"),
        pytest.param(
            [
                {
                    "resources": {
                        "requests": {"nvidia.com/gpu": "1"},
                        "limits": {"nvidia.com/gpu": "1"},
                    }
                }
            ],
            None,
            "BestEffort",
            id="gpu-only-does-not-count",
        ),
        pytest.param([{"resources": {"limits": CPU_MEM}}], None, "Guaranteed", id="limits-only"),
        pytest.param(
            [{"resources": {"limits": CPU_MEM, "requests": CPU_MEM}}] * 2,
            None,
            "Guaranteed",
            id="two-guaranteed-containers",
        ),
        pytest.param(
            [{"resources": {"limits": CPU_MEM}}, {}], None, "Burstable", id="one-without-limits"
        ),
        pytest.param(
            [{"resources": {"limits": CPU_MEM, "requests": {"cpu": "500m"}}}],
            None,
            "Burstable",
            id="request-below-limit",
        ),
        pytest.param(
            [{"resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}}],
            None,
            "Burstable",
            id="karimasu-shape",
        ),
        pytest.param(
            [{"resources": {"limits": CPU_MEM}}],
            [{"resources": {"requests": {"cpu": "100m"}}}],
            "Burstable",
            id="init-container-counts",
        ),
    ],
)
def test_qos_class_is_the_kubelets(core, containers, init, want) -> None:
    created = core.create_namespaced_pod(NS, _pod("qos", *containers, init=init))
    assert created.status.qos_class == want


def test_job_pods_get_their_qos_class_and_default_tolerations(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("guaranteed"))  # limits only: requests = limits
    emulator.settle()
    [pod] = job_pods(core, "guaranteed")
    assert pod.status.qos_class == "Guaranteed"
    assert {t.key for t in pod.spec.tolerations if t.toleration_seconds == 300} == {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    }
    job = batch.read_namespaced_job("guaranteed", NS)
    assert job.spec.template.spec.tolerations is None  # the template itself is untouched


def test_a_pod_that_tolerates_every_taint_gets_no_default(core) -> None:
    body = _pod("tolerant", {})
    body["spec"]["tolerations"] = [{"operator": "Exists"}]
    created = core.create_namespaced_pod(NS, body)
    assert [t.operator for t in created.spec.tolerations] == ["Exists"]
