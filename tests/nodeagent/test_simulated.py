"""The simulated source end to end against the Kubernetes API emulator over HTTP, and its
readings ingested by the portal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes import client, config

from kube_emulator import start_emulator
from kube_emulator.clock import FakeClock
from nodeagent.agent import Agent
from nodeagent.batch import parse_batch
from nodeagent.simulated import SimulatedSource, utilization
from scheduler.telemetry.detectors import foreign_gpus
from scheduler.telemetry.services import ingest_batch

NAMESPACE = "karimasu-jobs"
ONE_NODE = """
namespaces: [karimasu-jobs]
defaults: {gpus: 4, gpu_product: Tesla-V100-SXM2-16GB, gpu_memory_mib: 16384,
           cpu: "32", memory: 256Gi}
nodes:
  - name: tesla-01
"""


@pytest.fixture
def emulator(tmp_path):
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(ONE_NODE)
    handle = start_emulator(
        port=0, nodes_file=str(nodes), clock=FakeClock(), kubeconfig_path=str(tmp_path / "kc")
    )
    yield handle
    handle.close()


def submit(handle, job_id: int, gpus: int, profile: str | None, duration: int = 600) -> None:
    api = client.BatchV1Api(config.new_client_from_config(config_file=str(handle.kubeconfig_path)))
    labels = {
        "app.kubernetes.io/managed-by": "karimasu",
        "karimasu.io/job-id": str(job_id),
        "karimasu.io/attempt": "1",
    }
    notes = {"karimasu.io/sim-duration-seconds": str(duration)}
    if profile is not None:
        notes["karimasu.io/sim-gpu-utilization"] = profile
    container = {
        "name": "main",
        "image": "pytorch/pytorch:2.4",
        "resources": {
            "limits": {"nvidia.com/gpu": str(gpus)},
            "requests": {"nvidia.com/gpu": str(gpus)},
        },
    }
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"karimasu-job-{job_id}-a1", "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels, "annotations": notes},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeName": "tesla-01",
                    "containers": [container],
                },
            },
        },
    }
    api.create_namespaced_job(NAMESPACE, body)
    handle.settle()


def now_of(handle) -> datetime:
    return datetime.fromtimestamp(handle.clock.now(), UTC)


@pytest.fixture
def source(emulator):
    src = SimulatedSource("tesla-01", kubeconfig=str(emulator.kubeconfig_path))
    yield src
    src.close()


def test_idle_node_reads_zero(emulator, source):
    reading = source.read(now_of(emulator))
    assert reading.healthy and [g.index for g in reading.gpus] == [0, 1, 2, 3]
    assert {g.utilization_gpu_pct for g in reading.gpus} == {0.0}
    assert all(g.processes == [] and g.name == "Tesla-V100-SXM2-16GB" for g in reading.gpus)
    assert len({g.uuid for g in reading.gpus}) == 4


def test_running_jobs_drive_their_gpus(emulator, source):
    submit(emulator, 7, gpus=2, profile="80")
    emulator.advance(2)
    submit(emulator, 8, gpus=1, profile="idle")  # booked and running, but doing nothing
    emulator.advance(2)
    reading = source.read(now_of(emulator))
    by_index = {g.index: g for g in reading.gpus}
    assert [by_index[i].utilization_gpu_pct for i in range(4)] == [80.0, 80.0, 0.0, 0.0]
    assert [p.job_id for p in by_index[0].processes] == [7]
    assert [p.job_id for p in by_index[2].processes] == [8] and by_index[3].processes == []
    assert by_index[0].processes[0].foreign is False


def test_indices_are_sticky_while_pods_run(emulator, source):
    submit(emulator, 1, gpus=1, profile="50", duration=5)
    emulator.advance(1)
    submit(emulator, 2, gpus=1, profile="60", duration=600)
    emulator.advance(1)
    assert [g.utilization_gpu_pct for g in source.read(now_of(emulator)).gpus] == [50, 60, 0, 0]
    emulator.advance(10)  # job 1 ends; job 2 keeps GPU 1
    assert [g.utilization_gpu_pct for g in source.read(now_of(emulator)).gpus] == [0, 60, 0, 0]


def test_profiles_follow_time_since_start(emulator, source):
    submit(emulator, 3, gpus=1, profile="bursty")
    emulator.advance(10)
    first = source.read(now_of(emulator)).gpus[0].utilization_gpu_pct
    emulator.advance(60)
    second = source.read(now_of(emulator)).gpus[0].utilization_gpu_pct
    assert (first, second) == (95.0, 3.0)
    assert utilization(None, 0) == pytest.approx(90.0)  # default profile "training"
    assert utilization("500", 0) == 100.0 and utilization("nonsense", 0) == 90.0


def test_api_server_down_is_an_unhealthy_reading(emulator, source):
    emulator.stop()
    reading = source.read(now_of(emulator))
    assert reading.healthy is False and "simulated source" in reading.error
    emulator.restart()
    assert source.read(now_of(emulator)).healthy


def test_simulated_readings_flow_into_the_portal(emulator, db, alice, vision):
    from scheduler.models import Gpu, Job, Node

    node = Node.objects.create(
        name="tesla-01",
        gpu_capacity=4,
        first_seen_at=now_of(emulator),
        last_seen_at=now_of(emulator),
    )
    for i in range(4):
        Gpu.objects.create(node=node, index=i)
    job = Job.objects.create(
        name="t",
        owner=alice.user,
        team=vision,
        image="x",
        max_runtime_s=60,
        status="running",
        node=node,
        gpu_indices=[0],
        submitted_at=now_of(emulator),
    )
    submit(emulator, job.pk, gpus=1, profile="70")
    emulator.advance(2)
    sent = []
    src = SimulatedSource("tesla-01", kubeconfig=str(emulator.kubeconfig_path), foreign={3: 60.0})
    agent = Agent(src, "tesla-01", sent.append, clock=lambda: now_of(emulator))
    agent.tick()
    src.close()
    ingest_batch(node, parse_batch(sent[0]), now=now_of(emulator))
    summary = job.utilization_summary
    assert summary.samples == 1 and summary.utilization_sum == 70.0
    assert Gpu.objects.get(node=node, index=0).uuid.startswith("GPU-")
    assert [(r.node, r.index) for r in foreign_gpus(now=now_of(emulator))] == [("tesla-01", 3)]


@pytest.mark.django_db(transaction=True)
def test_demo_agents_command_posts_every_node_to_the_live_portal(
    emulator, live_server, monkeypatch
):
    from django.core.management import call_command
    from django.utils import timezone

    from scheduler.telemetry.api import views

    monkeypatch.setattr(views, "now", timezone.now)  # the agents read the real clock

    from scheduler.cluster.kube import KubernetesBackend
    from scheduler.services.inventory import sync_inventory
    from scheduler.telemetry.models import GpuSample, NodeAgentState

    sync_inventory(
        KubernetesBackend.from_kubeconfig(str(emulator.kubeconfig_path)), now=now_of(emulator)
    )
    submit(emulator, 99, gpus=1, profile="65")
    emulator.advance(2)
    call_command(
        "telemetry_agents",
        portal=live_server.url,
        once=True,
        wait=5,
        kubeconfig=str(emulator.kubeconfig_path),
    )
    assert NodeAgentState.objects.get().node.name == "tesla-01"
    assert sorted(GpuSample.objects.values_list("utilization", flat=True)) == [0, 0, 0, 65]
