"""Multi-node jobs (gangs, issue 17) through the emulator: API submit -> cycle (all or
nothing) -> one Indexed Job with a headless Service -> reconcile; preemption and a failing
rank take the whole gang; same-rack nodes first; accounting counts every GPU."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kube_emulator.resources import PODS
from scheduler import states
from scheduler.cluster import mapping
from scheduler.models import Job, Node, TeamQuota
from scheduler.services.board import gpu_holders
from scheduler.services.booking_policy import team_gpu_hours
from scheduler.services.cycle import run_cycle
from scheduler.services.reconcile import reconcile
from scheduler.services.snapshot import build_snapshot
from scheduler.telemetry.services import _allocations

pytestmark = pytest.mark.django_db

SIM = "karimasu.io/sim-duration-seconds"
NS = "karimasu-jobs"


def submit(persona, team="vision", gpus=2, nodes=3, duration=30, status=201, **extra):
    response = persona.client().post(
        "/api/v1/jobs/",
        {
            "name": "ddp",
            "team": team,
            "image": "pytorch/pytorch:2.4",
            "gpus": gpus,
            "nodes": nodes,
            "max_runtime_s": 3600,
            "annotations": {SIM: str(duration), **extra.pop("annotations", {})},
            **extra,
        },
        format="json",
    )
    assert response.status_code == status, response.content
    return Job.objects.get(pk=response.json()["id"]) if status == 201 else response.json()


def _pods(backend, job):
    items = backend.core.list_namespaced_pod(
        NS, label_selector=f"job-name={job.cluster_name}"
    ).items
    return sorted(items, key=lambda p: int(p.metadata.labels[mapping.INDEX_LABEL]))


def test_a_six_gpu_job_runs_on_three_two_gpu_nodes_as_one_indexed_job(
    alice, synced, backend, emulator
):
    job = submit(alice, gpus=2, nodes=3)
    report = run_cycle(backend, now=timezone.now())
    assert report.admitted == [job.pk]
    job.refresh_from_db()
    assert job.status == states.STARTING
    placed = [p["node"] for p in job.placements]
    assert len(set(placed)) == 3 and all(len(p["gpu_indices"]) == 2 for p in job.placements)
    assert job.node.name == placed[0]

    k8s_job = backend.batch.read_namespaced_job(job.cluster_name, NS)
    assert k8s_job.spec.completion_mode == "Indexed"
    assert (k8s_job.spec.completions, k8s_job.spec.parallelism, k8s_job.spec.backoff_limit) == (
        3,
        3,
        0,
    )
    service = backend.core.read_namespaced_service(job.cluster_name, NS)
    assert service.spec.cluster_ip == "None"
    assert service.spec.selector == {
        mapping.LABEL_JOB: str(job.pk),
        mapping.LABEL_ATTEMPT: str(job.attempt),
    }
    assert service.metadata.owner_references[0].uid == k8s_job.metadata.uid

    emulator.settle()
    pods = _pods(backend, job)
    assert len(pods) == 3
    assert {p.spec.node_name for p in pods} == set(placed)  # exactly the accounted nodes
    for rank, pod in enumerate(pods):
        assert pod.spec.hostname == f"{job.cluster_name}-{rank}"
        assert pod.spec.subdomain == job.cluster_name
        assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "2"
        env = {e.name: e for e in pod.spec.containers[0].env}
        assert env["MASTER_ADDR"].value == f"{job.cluster_name}-0.{job.cluster_name}"
        assert env["MASTER_PORT"].value == "29500"
        assert (env["WORLD_SIZE"].value, env["NNODES"].value) == ("6", "3")
        assert env["NPROC_PER_NODE"].value == "2"
        path = env["NODE_RANK"].value_from.field_ref.field_path
        assert path == f"metadata.annotations['{mapping.INDEX_LABEL}']"
        assert pod.metadata.annotations[mapping.INDEX_LABEL] == str(rank)

    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.RUNNING
    # Each rank is recorded on the node that runs it, with the GPUs accounted there.
    assert [p["node"] for p in job.placements] == [p.spec.node_name for p in pods]
    assert sorted(p["node"] for p in job.placements) == sorted(placed)
    detail = alice.client().get(f"/api/v1/jobs/{job.pk}/").json()
    assert detail["nodes"] == 3 and len(detail["placements"]) == 3
    assert detail["node"] == pods[0].spec.node_name
    listed = alice.client().get("/api/v1/jobs/").json()["results"]
    assert listed[0]["placements"] == detail["placements"]

    # The core sees all six GPUs held.
    snapshot = build_snapshot(now=timezone.now(), foreign_busy=frozenset())
    (allocation,) = snapshot.allocations
    assert allocation.gpus == 6 and len(allocation.pods) == 3
    # The board shows the gang on every GPU of its three nodes; telemetry attributes a
    # reading on rank 2's node to it; the team's GPU-hours count six GPUs.
    held = {
        (Node.objects.get(pk=node_id).name, index)
        for (node_id, index), holder in gpu_holders(now=timezone.now()).items()
        if holder.kind == "job" and holder.id == job.pk
    }
    assert held == {(p["node"], i) for p in job.placements for i in p["gpu_indices"]}
    rank2 = Node.objects.get(name=job.placements[2]["node"])
    held_on_rank2, _uids = _allocations(rank2)
    assert held_on_rank2 == dict.fromkeys(job.placements[2]["gpu_indices"], job.pk)
    later = timezone.now() + timedelta(hours=1)
    hours = team_gpu_hours(job.team, job.started_at, later, now=later)
    assert hours == pytest.approx(6 * (later - job.started_at).total_seconds() / 3600)

    emulator.advance(31)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.SUCCEEDED
    # Usage (fair share) counts every GPU of the gang.
    snapshot = build_snapshot(now=timezone.now(), foreign_busy=frozenset())
    (usage,) = snapshot.usage
    seconds = (job.finished_at - job.started_at).total_seconds()
    assert usage.gpu_seconds == pytest.approx(6 * seconds)


def test_a_gang_that_fits_only_in_part_is_never_started(alice, synced, backend, emulator):
    # Four nodes of two GPUs, but one holds another team's notebook: three fit a pod.
    job = submit(alice, gpus=2, nodes=4)
    report = run_cycle(backend, now=timezone.now())
    assert report.admitted == []
    job.refresh_from_db()
    assert job.status == states.QUEUED and job.placements == [] and job.node is None
    assert backend.batch.list_namespaced_job(NS).items == []
    assert backend.core.list_namespaced_pod(NS).items == []


def test_submission_refuses_a_gang_the_cluster_can_never_hold(alice, synced):
    error = submit(alice, gpus=2, nodes=5, status=400)
    assert error["error"]["details"]["gpus"] == [
        "This job needs 5 nodes with 2 GPUs each; the cluster has 4."
    ]
    error = submit(alice, gpus=2, nodes=99, status=400)
    assert "nodes" in error["error"]["details"]
    body = {"name": "ddp", "team": "vision", "image": "pytorch/pytorch:2.4", "gpus": 2}
    response = alice.client().post(
        "/api/v1/jobs/",
        {**body, "nodes": 5, "max_runtime_s": 3600},
        format="json",
        HTTP_ACCEPT_LANGUAGE="ja",
    )
    assert response.json()["error"]["message"] == (
        "このジョブには GPU を 2 基ずつ持つノードが 5 台必要ですが、"
        "クラスタには 4 台しかありません。"
    )


def test_preemption_takes_the_whole_gang(alice, charlie, synced, backend, emulator, nlp):
    TeamQuota.objects.create(team=nlp, guaranteed_gpus=7)
    gang = submit(alice, gpus=2, nodes=3, duration=3600)
    now = timezone.now()
    run_cycle(backend, now=now)
    emulator.settle()
    reconcile(backend, now=timezone.now())
    gang.refresh_from_db()
    assert gang.status == states.RUNNING and gang.borrowed

    lender = submit(charlie, team="nlp", gpus=2, nodes=1, duration=60)
    report = run_cycle(backend, now=now + timedelta(seconds=10))
    assert report.preempted == [gang.pk]
    gang.refresh_from_db()
    assert gang.status == states.PREEMPTED
    emulator.advance(90)  # past the grace (60 s after the cycle): every rank's pod is gone
    assert _pods(backend, gang) == []
    assert backend.batch.list_namespaced_job(NS).items == []
    assert backend.core.list_namespaced_service(NS).items == []

    report = run_cycle(backend, now=gang.terminating_until + timedelta(seconds=1))
    gang.refresh_from_db()
    assert (gang.status, gang.attempt, gang.placements) == (states.QUEUED, 2, [])
    assert report.admitted == [lender.pk]


def test_a_failing_rank_fails_the_whole_gang(alice, synced, backend, emulator):
    job = submit(
        alice, gpus=2, nodes=3, duration=30, annotations={"karimasu.io/sim-fail-indexes": "1"}
    )
    run_cycle(backend, now=timezone.now())
    emulator.settle()
    emulator.advance(31)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.FAILED
    emulator.settle()
    live = [p for p in _pods(backend, job) if p.status.phase in ("Pending", "Running")]
    assert live == []


RACKS = """
namespaces: [karimasu-jobs]
defaults: {gpus: 2, gpu_product: Tesla-V100-SXM2-16GB, gpu_memory_mib: 16384,
           cpu: "32", memory: 256Gi}
nodes:
  - name: tesla-01
    labels: {karimasu.io/rack: a}
  - name: tesla-02
    labels: {karimasu.io/rack: b}
  - name: tesla-03
    labels: {karimasu.io/rack: a}
"""


@pytest.mark.nodes_file(RACKS)
def test_a_gang_takes_nodes_of_one_rack_first(alice, synced, backend, emulator):
    job = submit(alice, gpus=2, nodes=2)
    run_cycle(backend, now=timezone.now())
    job.refresh_from_db()
    assert sorted(p["node"] for p in job.placements) == ["tesla-01", "tesla-03"]
    emulator.settle()
    assert {p.spec.node_name for p in _pods(backend, job)} == {"tesla-01", "tesla-03"}


def test_a_crash_between_admission_and_creation_is_repaired_whole(
    alice, synced, backend, emulator, monkeypatch
):
    from scheduler.cluster.backend import ClusterUnavailable
    from scheduler.cluster.kube import KubernetesBackend

    job = submit(alice, gpus=2, nodes=3)
    real_submit = KubernetesBackend.submit

    def crash(self, spec):
        raise ClusterUnavailable("injected: the API server went away")

    monkeypatch.setattr(KubernetesBackend, "submit", crash)
    run_cycle(backend, now=timezone.now())
    job.refresh_from_db()
    # Every rank's placement was written with the admission, and nothing runs yet.
    assert job.status == states.ADMITTED and len(job.placements) == 3
    assert backend.batch.list_namespaced_job(NS).items == []

    # The Job is created, then the crash comes before its Service.
    monkeypatch.setattr(KubernetesBackend, "submit", real_submit)
    monkeypatch.setattr(
        KubernetesBackend, "_ensure_service", lambda self, spec, uid: crash(self, spec)
    )
    report = reconcile(backend, now=timezone.now())
    assert report.unavailable
    job.refresh_from_db()
    assert job.status == states.ADMITTED
    assert len(backend.batch.list_namespaced_job(NS).items) == 1
    assert backend.core.list_namespaced_service(NS).items == []

    monkeypatch.undo()
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.STARTING
    (service,) = backend.core.list_namespaced_service(NS).items
    assert service.metadata.name == job.cluster_name
    emulator.settle()
    assert len(_pods(backend, job)) == 3


def test_a_gang_missing_a_pod_is_requeued_whole(alice, synced, backend, emulator):
    job = submit(alice, gpus=2, nodes=3, duration=3600)
    run_cycle(backend, now=timezone.now())
    emulator.settle()
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.RUNNING
    victim = _pods(backend, job)[1]
    # Gone from under the Job (deleted at once, as a node's sudden loss can leave it).
    emulator.store.delete(PODS, NS, victim.metadata.name)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.attempt, job.placements) == (states.QUEUED, 2, [])
    assert job.reason == "requeued_after_gang_broken"
    emulator.settle()
    emulator.advance(90)
    assert backend.batch.list_namespaced_job(NS).items == []
    assert [p for p in backend.core.list_namespaced_pod(NS).items] == []
