"""Fixtures: an emulator on a FakeClock, and official-client APIs pointed at it over HTTP.

Builders (``make_job``, ``make_pod``) return the client's model objects, so every test writes
through the same serialization the backend uses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from kube_emulator import EmulatorHandle, FakeClock, start_emulator

NS = "karimasu-jobs"
ONE_NODE_YAML = """
namespaces: [karimasu-jobs]
nodes:
  - name: solo-01
    gpus: 2
    cpu: "16"
    memory: 64Gi
"""


@pytest.fixture(autouse=True)
def _no_emulator_threads_left() -> Iterator[None]:
    """Every test leaves no emulator server or ticker thread running."""
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("k8s-emulator")]
    assert left == [], f"emulator threads still running: {left}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def nodes_file() -> Path | None:
    """Override in a module (or parametrize) to run on another cluster; None = the default."""
    return None


@pytest.fixture
def emulator(tmp_path: Path, clock: FakeClock, nodes_file: Path | None) -> Iterator[EmulatorHandle]:
    handle = start_emulator(
        clock=clock, nodes_file=nodes_file, kubeconfig_path=tmp_path / "kubeconfig"
    )
    yield handle
    handle.close()


@pytest.fixture
def one_node_file(tmp_path: Path) -> Path:
    path = tmp_path / "one-node.yaml"
    path.write_text(ONE_NODE_YAML, encoding="utf-8")
    return path


@pytest.fixture
def live(tmp_path: Path, one_node_file: Path) -> Iterator[EmulatorHandle]:
    """An emulator in real time (for Pods run as real processes), on one node."""
    handle = start_emulator(
        nodes_file=one_node_file, kubeconfig_path=tmp_path / "kubeconfig", tick_interval=0.05
    )
    yield handle
    handle.close()


@pytest.fixture
def live_core(live: EmulatorHandle) -> Iterator[client.CoreV1Api]:
    assert live.kubeconfig_path is not None
    api = config.new_client_from_config(config_file=str(live.kubeconfig_path))
    yield client.CoreV1Api(api)
    api.close()


@pytest.fixture
def api_client(emulator: EmulatorHandle) -> Iterator[client.ApiClient]:
    assert emulator.kubeconfig_path is not None
    api = config.new_client_from_config(config_file=str(emulator.kubeconfig_path))
    yield api
    api.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def batch(api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


def make_job(
    name: str,
    *,
    gpus: int = 1,
    duration: float | None = 10,
    exit_code: int | None = None,
    annotations: dict[str, str] | None = None,
    backoff_limit: int = 0,
    image: str = "registry.local/train:1.0",
    restart_policy: str = "Never",
    **spec: object,
) -> client.V1Job:
    """A Job as the backend would build it; ``duration``/``exit_code`` become sim annotations."""
    notes = dict(annotations or {})
    if duration is not None:
        notes["karimasu.io/sim-duration-seconds"] = str(duration)
    if exit_code is not None:
        notes["karimasu.io/sim-exit-code"] = str(exit_code)
    limits = {"nvidia.com/gpu": str(gpus), "cpu": "2", "memory": "8Gi"} if gpus else None
    container = client.V1Container(
        name="train", image=image, resources=client.V1ResourceRequirements(limits=limits)
    )
    return client.V1Job(
        metadata=client.V1ObjectMeta(
            name=name, labels={"karimasu.io/job": name}, annotations=notes
        ),
        spec=client.V1JobSpec(
            backoff_limit=backoff_limit,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "train"}),
                spec=client.V1PodSpec(restart_policy=restart_policy, containers=[container]),
            ),
            **spec,
        ),
    )


def make_pod(name: str, labels: dict[str, str] | None = None, **spec: object) -> client.V1Pod:
    """A bare Pod without GPUs."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="main", image="busybox:1.36")], **spec
        ),
    )


def job_pods(core: client.CoreV1Api, job: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(NS, label_selector=f"job-name={job}").items


def condition(obj: object, type_: str) -> object | None:
    """The condition of ``type_`` on a client model's status, or None."""
    for item in getattr(obj, "status").conditions or []:  # noqa: B009 - obj is any model
        if item.type == type_:
            return item
    return None
