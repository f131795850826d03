"""Pure translation for DRA (scheduler/cluster/dra.py): which nodes use it, and what a DRA
Job and its claim look like."""

from __future__ import annotations

import doctest

import pytest

from scheduler.cluster import dra
from scheduler.cluster.backend import GpuDevice, JobSpec
from scheduler.cluster.mapping import job_manifest

PUBLISHED = {"tesla-01": {0: "GPU-a", 1: "GPU-b"}}


def test_the_docstring_examples_hold() -> None:
    result = doctest.testmod(dra)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("setting", "node", "gpus", "published", "mode"),
    [
        ("auto", "tesla-01", 2, PUBLISHED, "dra"),
        ("auto", "tesla-02", 2, PUBLISHED, "device-plugin"),  # the driver skips this node
        ("auto", "tesla-01", 2, None, "device-plugin"),  # no DRA in the cluster
        ("dra", "tesla-02", 2, None, "dra"),  # forced: trust the driver
        ("device-plugin", "tesla-01", 2, PUBLISHED, "device-plugin"),
        ("dra", "cpu-01", 0, PUBLISHED, "device-plugin"),  # no GPUs
    ],
)
def test_node_mode(setting, node, gpus, published, mode) -> None:
    assert dra.node_mode(setting, node, gpus, published) == mode


def _spec(**fields) -> JobSpec:
    base = dict(
        job_id=42, attempt=2, name="train", image="x:1", command=[], args=[], env={}, gpus=2,
        cpu_millis=1000, memory_mb=1024, node_name="tesla-01", max_runtime_s=60, user="alice",
        team="vision",
    )  # fmt: skip
    return JobSpec(**{**base, **fields})


def test_a_dra_job_takes_its_gpus_from_its_claim_only() -> None:
    devices = [GpuDevice(0, "GPU-a"), GpuDevice(1, "GPU-b")]
    job = job_manifest(_spec(gpu_allocation="dra", gpu_devices=devices), namespace="ns")
    dra.use_claim(job, devices)
    pod = job["spec"]["template"]["spec"]
    assert pod["resourceClaims"] == [
        {"name": "gpus", "resourceClaimName": "karimasu-job-42-a2-gpus"}
    ]
    resources = pod["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in resources["requests"]
    assert "nvidia.com/gpu" not in resources["limits"]
    assert resources["claims"] == [{"name": "gpus"}]
    job["metadata"]["uid"] = "uid-1"
    claim = dra.claim_from_job(job)
    assert claim is not None
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    exactly = claim["spec"]["devices"]["requests"][0]["exactly"]
    assert exactly["count"] == 2
    assert exactly["selectors"][0]["cel"]["expression"] == (
        'device.attributes["gpu.nvidia.com"].uuid in ["GPU-a", "GPU-b"]'
    )


def test_a_job_without_a_claim_needs_none() -> None:
    job = job_manifest(_spec(), namespace="ns")
    job["metadata"]["uid"] = "uid-1"
    assert dra.claim_from_job(job) is None
    assert not dra.uses_dra(_spec(gpu_allocation="dra", gpus=0))


def test_a_uuid_with_a_quote_cannot_break_out_of_the_selector() -> None:
    expression, _ = dra.selector([GpuDevice(0, 'GPU-"] || true || ["')])
    assert expression == (
        'device.attributes["gpu.nvidia.com"].uuid in ["GPU-\\"] || true || [\\""]'
    )
