"""Capacity that pods Karimasu did not create hold (DaemonSets, other namespaces' pods) is
never offered, end to end through the emulator: inventory -> cycle -> Kubernetes Job."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone
from kubernetes import client

from scheduler import states
from scheduler.models import Job, Node
from scheduler.services.cycle import run_cycle
from scheduler.services.inventory import sync_inventory
from scheduler.services.reconcile import reconcile
from tests.scheduler.cluster.test_cycle_e2e import submit

pytestmark = pytest.mark.django_db

SYSTEM_PODS = """
namespaces: [karimasu-jobs]
nodes:
  - {name: cpu-01, gpus: 1, cpu: "32", memory: 64Gi}
daemonsets:
  - {name: kube-proxy, requests: {cpu: 100m, memory: 128Mi}, tolerations: [{operator: Exists}]}
pods:
  - {name: etl, namespace: data, node: cpu-01, requests: {cpu: "8", memory: 1Gi}}
"""


def test_inventory_records_what_foreign_pods_hold(synced, backend, emulator):
    tesla04 = Node.objects.get(name="tesla-04")
    # the notebook (1 GPU, 4 CPUs, 16 GiB) and two DaemonSet pods (150m, 192 MiB)
    assert (tesla04.foreign_gpus, tesla04.foreign_cpu_millis, tesla04.foreign_memory_mb) == (
        1,
        4150,
        16384 + 192,
    )
    assert "research/notebook-0" in tesla04.foreign_pods
    tesla01 = Node.objects.get(name="tesla-01")
    assert (tesla01.foreign_gpus, tesla01.foreign_cpu_millis) == (0, 150)
    assert len(tesla01.foreign_pods) == 2


def test_a_gpu_held_by_a_foreign_pod_is_never_offered(alice, synced, backend, emulator):
    jobs = [submit(alice, gpus=2, runtime=3600, duration=600) for _ in range(4)]
    report = run_cycle(backend, now=timezone.now())
    assert len(report.admitted) == 3  # tesla-04 has one GPU left
    admitted = Job.objects.filter(pk__in=report.admitted)
    assert "tesla-04" not in {j.node.name for j in admitted}
    waiting = Job.objects.get(pk=next(j.pk for j in jobs if j.pk not in report.admitted))
    assert waiting.status == states.QUEUED

    single = submit(alice, gpus=1, duration=600)
    report = run_cycle(backend, now=timezone.now())
    assert report.admitted == [single.pk]
    single.refresh_from_db()
    assert (single.node.name, single.gpu_indices) == ("tesla-04", [0])

    emulator.settle()
    reconcile(backend, now=timezone.now())
    statuses = set(Job.objects.exclude(pk=waiting.pk).values_list("status", flat=True))
    assert statuses == {states.RUNNING}  # nothing admitted that the cluster cannot run


def test_a_finished_foreign_pod_gives_its_gpu_back(alice, synced, backend, emulator):
    client.CoreV1Api(backend.api_client).delete_namespaced_pod("notebook-0", "research")
    emulator.settle()
    sync_inventory(backend, now=timezone.now())
    # terminating for its grace period (30 s), it still holds its GPU, as on a real cluster
    assert Node.objects.get(name="tesla-04").foreign_gpus == 1
    emulator.advance(30)
    sync_inventory(backend, now=timezone.now())
    assert Node.objects.get(name="tesla-04").foreign_gpus == 0
    for _ in range(4):
        submit(alice, gpus=2, runtime=3600)
    assert len(run_cycle(backend, now=timezone.now()).admitted) == 4


@pytest.mark.nodes_file(SYSTEM_PODS)
def test_cpu_equal_to_allocatable_is_refused_beside_system_pods(alice, synced):
    node = Node.objects.get(name="cpu-01")
    assert (node.daemon_cpu_millis, node.foreign_cpu_millis) == (100, 8100)
    response = alice.client().post(
        "/api/v1/jobs/",
        {
            "name": "all",
            "team": "vision",
            "image": "pytorch/pytorch:2.4",
            "gpus": 1,
            "cpu_millis": 32000,
            "max_runtime_s": 3600,
        },
        format="json",
    )
    assert response.status_code == 400
    assert "31900m" in str(response.json())  # what the DaemonSet leaves, not allocatable


@pytest.mark.nodes_file(SYSTEM_PODS)
def test_cpu_held_by_other_pods_is_not_offered(alice, synced, backend, emulator):
    everything = submit(alice, gpus=1, cpu_millis=31900)  # fits once the ETL pod is gone
    fits = submit(alice, gpus=0, cpu_millis=23900)
    report = run_cycle(backend, now=timezone.now())
    assert report.admitted == [fits.pk]
    everything.refresh_from_db()
    assert (everything.status, everything.reason) == (states.QUEUED, "too-big")
    emulator.settle()
    reconcile(backend, now=timezone.now())
    fits.refresh_from_db()
    assert fits.status == states.RUNNING  # the cluster could place what Karimasu admitted


def test_the_node_api_shows_gpus_in_use_outside_karimasu(alice, synced):
    listed = alice.client().get("/api/v1/nodes/").json()["results"]
    nodes = {n["name"]: n for n in listed}
    assert nodes["tesla-04"]["foreign_gpus"] == 1
    assert "research/notebook-0" in nodes["tesla-04"]["foreign_pods"]
    assert [g["outside_karimasu"] for g in nodes["tesla-04"]["gpus"]] == [False, True]
    assert nodes["tesla-01"]["foreign_gpus"] == 0
    assert not any(g["outside_karimasu"] for g in nodes["tesla-01"]["gpus"])
    browser = Client()
    browser.force_login(alice.user)
    page = browser.get("/").content.decode()
    assert page.count('class="gpu outside"') == 1
