"""The real Kubernetes backend, over HTTP, against the emulator: submit, status, logs, cancel,
inventory, reconcile after crashes and outages."""

from __future__ import annotations

import pytest
from django.utils import timezone
from kubernetes import client

from scheduler import states
from scheduler.cluster import backend as cluster
from scheduler.cluster.backend import ClusterUnavailable
from scheduler.models import Job, Node, NodeEvent
from scheduler.services.inventory import sync_inventory
from scheduler.services.jobs import job_spec
from scheduler.services.reconcile import reconcile
from tests.scheduler.cluster.conftest import ONE_NODE

pytestmark = pytest.mark.django_db


def run_cluster(emulator, seconds: float = 0) -> None:
    """Let simulated time pass (in 1 s steps) and the emulated controllers catch up."""
    emulator.advance(seconds) if seconds else emulator.settle()


def cluster_jobs(backend) -> list[str]:
    jobs = client.BatchV1Api(backend.api_client).list_namespaced_job("karimasu-jobs")
    return sorted(j.metadata.name for j in jobs.items)


def test_inventory_has_every_node_and_gpu(synced):
    nodes = Node.objects.order_by("name")
    assert [n.name for n in nodes] == ["tesla-01", "tesla-02", "tesla-03", "tesla-04"]
    for node in nodes:
        assert (node.gpu_model, node.gpu_capacity, node.gpu_memory_mb) == (
            "Tesla-V100-SXM2-16GB",
            2,
            16384,
        )
        assert node.schedulable
        assert sorted(g.index for g in node.gpus.all()) == [0, 1]


def test_inventory_follows_cordon_and_node_removal(synced, backend, emulator):
    core = client.CoreV1Api(backend.api_client)
    core.patch_node("tesla-02", {"spec": {"unschedulable": True}})
    emulator.controller.remove_node("tesla-04")
    report = sync_inventory(backend, now=timezone.now())

    assert report.gone == ["tesla-04"]
    assert Node.objects.get(name="tesla-02").cordoned
    gone = Node.objects.get(name="tesla-04")
    assert gone.gone_at is not None and not gone.schedulable
    kinds = set(NodeEvent.objects.values_list("node__name", "kind"))
    assert {("tesla-02", "cordoned"), ("tesla-04", "gone")} <= kinds


def test_submit_run_succeed(make_admitted, backend, emulator):
    job = make_admitted(duration=30)
    report = reconcile(backend, now=timezone.now())
    assert report.submitted == [job.pk]
    job.refresh_from_db()
    assert job.status == states.STARTING

    run_cluster(emulator)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.RUNNING
    assert job.started_at is not None

    run_cluster(emulator, 31)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.exit_code) == (states.SUCCEEDED, 0)
    assert list(job.events.values_list("to_status", flat=True)) == [
        "starting",
        "running",
        "succeeded",
    ]


def test_failing_container_fails_the_job_with_its_exit_code(make_admitted, backend, emulator):
    job = make_admitted(duration=5, **{"karimasu.io/sim-exit-code": "3"})
    reconcile(backend, now=timezone.now())
    run_cluster(emulator, 6)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.reason, job.exit_code) == (states.FAILED, "error", 3)


def test_oom_killed_is_reported(make_admitted, backend, emulator):
    job = make_admitted(
        duration=5, **{"karimasu.io/sim-exit-code": "137", "karimasu.io/sim-oom-killed": "true"}
    )
    reconcile(backend, now=timezone.now())
    run_cluster(emulator, 6)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.FAILED, "oom_killed")


def test_deadline_backstop_is_enforced_by_the_cluster(make_admitted, backend, emulator, settings):
    """Without a reconcile pass in time, the cluster stops the job at its backstop: max
    runtime + start timeout after the Job's creation."""
    settings.KARIMASU_START_TIMEOUT_SECONDS = 30
    job = make_admitted(duration=7200)
    Job.objects.filter(pk=job.pk).update(max_runtime_s=60)
    job.refresh_from_db()
    reconcile(backend, now=timezone.now())
    run_cluster(emulator, 89)
    assert (
        client.BatchV1Api(backend.api_client)
        .read_namespaced_job(job.cluster_name, "karimasu-jobs")
        .status.active
    )
    run_cluster(emulator, 1)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.TIMED_OUT, "deadline_exceeded")


@pytest.mark.nodes_file(ONE_NODE)
@pytest.mark.gpu_allocation("device-plugin")  # with DRA: test_dra_backend.py
def test_third_one_gpu_job_on_a_full_two_gpu_node_stays_pending(make_admitted, backend, emulator):
    jobs = [make_admitted(indices=(i % 2,)) for i in range(3)]
    reconcile(backend, now=timezone.now())
    run_cluster(emulator)
    reconcile(backend, now=timezone.now())
    for job in jobs:
        job.refresh_from_db()
    assert [j.status for j in jobs[:2]] == [states.RUNNING, states.RUNNING]
    third = jobs[2]
    assert (third.status, third.reason) == (states.STARTING, "unschedulable")
    assert "Insufficient nvidia.com/gpu" in third.message


def test_image_pull_failure_is_a_reason(make_admitted, backend, emulator):
    job = make_admitted()
    Job.objects.filter(pk=job.pk).update(image="registry.example/does-not-exist:1")
    job.refresh_from_db()
    reconcile(backend, now=timezone.now())
    run_cluster(emulator)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.STARTING, "image_pull_failure")


def test_logs_tail_and_cancel_is_idempotent(make_admitted, backend, emulator):
    job = make_admitted(duration=600)
    reconcile(backend, now=timezone.now())
    run_cluster(emulator, 20)
    lines = list(backend.logs(job.pk, job.attempt, tail_lines=5))
    assert 0 < len(lines) <= 5

    assert backend.cancel(job.pk, job.attempt) is True
    run_cluster(emulator, 60)  # the pods terminate for their grace period (60 s), as on a cluster
    assert backend.status(job.pk, job.attempt) is None
    assert backend.cancel(job.pk, job.attempt) is False
    pods = client.CoreV1Api(backend.api_client).list_namespaced_pod(
        "karimasu-jobs", label_selector=f"karimasu.io/job-id={job.pk}"
    )
    assert pods.items == []


def test_crash_between_decided_and_created_yields_exactly_one_job(make_admitted, backend):
    job = make_admitted()
    # The cycle decided (row admitted) and crashed before creating: reconcile creates it.
    reconcile(backend, now=timezone.now())
    # And a crash after creating but before recording: a second create is a no-op.
    assert backend.submit(job_spec(job)).created is False
    reconcile(backend, now=timezone.now())
    assert cluster_jobs(backend) == [f"karimasu-job-{job.pk}-a1"]
    job.refresh_from_db()
    assert job.status == states.STARTING


def test_recorded_but_not_yet_created_after_a_retry(make_admitted, backend):
    job = make_admitted()
    assert backend.submit(job_spec(job)).created is True
    reconcile(backend, now=timezone.now())  # finds it (no second create) and records it
    job.refresh_from_db()
    assert job.status == states.STARTING
    assert cluster_jobs(backend) == [f"karimasu-job-{job.pk}-a1"]


def test_running_row_without_a_job_is_lost_and_requeued(make_admitted, backend, emulator):
    job = make_admitted(duration=600)
    reconcile(backend, now=timezone.now())
    run_cluster(emulator)
    reconcile(backend, now=timezone.now())
    client.BatchV1Api(backend.api_client).delete_namespaced_job(
        job.cluster_name, "karimasu-jobs", propagation_policy="Background"
    )
    report = reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert report.lost == [job.pk]
    assert (job.status, job.attempt, job.node) == (states.QUEUED, 2, None)
    assert "lost" in list(job.events.values_list("to_status", flat=True))


def test_node_lost_requeues_and_cleans_up_the_old_attempt(make_admitted, backend, emulator):
    job = make_admitted(duration=600)
    reconcile(backend, now=timezone.now())
    run_cluster(emulator)
    reconcile(backend, now=timezone.now())
    emulator.controller.lose_node("tesla-01")
    run_cluster(emulator, 299)  # the pods tolerate unreachable for 300 s (the default)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.RUNNING
    run_cluster(emulator, 1)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.attempt) == (states.QUEUED, 2)
    assert job.events.filter(reason__in=("node_lost", "evicted")).exists()
    run_cluster(emulator)
    assert cluster_jobs(backend) == []


def test_lost_too_often_fails(make_admitted, backend, settings):
    settings.KARIMASU_MAX_ATTEMPTS = 1
    job = make_admitted()
    reconcile(backend, now=timezone.now())
    client.BatchV1Api(backend.api_client).delete_namespaced_job(job.cluster_name, "karimasu-jobs")
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.FAILED, "missing_too_often")


def test_orphan_job_of_a_cancelled_row_is_deleted(make_admitted, backend, emulator):
    job = make_admitted(duration=600)
    reconcile(backend, now=timezone.now())
    # The user cancelled while the cluster was unreachable: the row is cancelled, the Job runs.
    Job.objects.filter(pk=job.pk).update(status=states.CANCELLED)
    report = reconcile(backend, now=timezone.now())
    assert report.orphans_deleted == [f"{job.pk}/a1"]
    run_cluster(emulator)
    assert cluster_jobs(backend) == []


def test_finished_job_of_a_finished_row_is_left_for_its_ttl(make_admitted, backend, emulator):
    job = make_admitted(duration=5)
    reconcile(backend, now=timezone.now())
    run_cluster(emulator, 6)
    reconcile(backend, now=timezone.now())
    report = reconcile(backend, now=timezone.now())
    assert report.orphans_deleted == []
    assert cluster_jobs(backend) == [job.cluster_name]


def test_api_server_down_for_a_while_and_back_loses_nothing(make_admitted, backend, emulator):
    job = make_admitted(duration=30)
    reconcile(backend, now=timezone.now())
    run_cluster(emulator)
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.RUNNING

    emulator.stop()
    report = reconcile(backend, now=timezone.now())
    assert report.unavailable and not report.changed
    with pytest.raises(ClusterUnavailable):
        sync_inventory(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.RUNNING
    assert Node.objects.filter(gone_at__isnull=True).count() == 4

    # Meanwhile the job finished on the cluster; the API server comes back.
    run_cluster(emulator, 31)
    emulator.restart()
    reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert job.status == states.SUCCEEDED
    assert sync_inventory(backend, now=timezone.now()).gone == []


def test_status_of_an_unknown_attempt_is_none(backend):
    assert backend.status(999, 1) is None


def test_status_reports_the_node_and_phase(make_admitted, backend, emulator):
    job = make_admitted(node="tesla-03", indices=(1,))
    backend.submit(job_spec(job))
    run_cluster(emulator)
    state = backend.status(job.pk, 1)
    assert (state.phase, state.node_name) == (cluster.RUNNING, "tesla-03")


class _RefusesOne:
    """The real backend, except that the API server refuses one job's create with a 422
    (as it does for a spec it finds invalid)."""

    def __init__(self, backend, refused_job_id: int) -> None:
        self._backend = backend
        self._refused = refused_job_id

    def submit(self, spec):
        if spec.job_id == self._refused:
            raise cluster.ClusterRejected(
                f"Job karimasu-job-{spec.job_id}-a1 rejected: 422 metadata.annotations: "
                "Invalid value"
            )
        return self._backend.submit(spec)

    def __getattr__(self, name):
        return getattr(self._backend, name)


def test_one_refused_job_never_stalls_reconcile(make_admitted, backend, emulator):
    finished = make_admitted(duration=5)
    reconcile(backend, now=timezone.now())
    run_cluster(emulator, 6)  # it has finished on the cluster; its row does not know yet
    bad = make_admitted(node="tesla-02", duration=5)
    good = make_admitted(node="tesla-03", duration=5)
    report = reconcile(_RefusesOne(backend, bad.pk), now=timezone.now())

    bad.refresh_from_db()
    assert (bad.status, bad.reason) == (states.FAILED, "rejected_by_cluster")
    assert "422" in bad.message
    good.refresh_from_db()
    finished.refresh_from_db()
    assert good.status == states.STARTING and good.pk in report.submitted
    assert finished.status == states.SUCCEEDED


def test_a_refused_create_after_a_cycle_fails_the_job_with_the_servers_message(
    make_admitted, backend
):
    from scheduler.services.cycle import CycleReport, _after

    bad = make_admitted()
    report = CycleReport()
    report.admitted.append(bad.pk)
    _after(_RefusesOne(backend, bad.pk), report)
    bad.refresh_from_db()
    assert bad.status == states.FAILED and "refused" in bad.message


def test_a_preemption_tells_the_pod_then_stops_it_with_the_grace(make_admitted, backend, emulator):
    job = make_admitted(duration=600)
    reconcile(backend, now=timezone.now())
    run_cluster(emulator)
    start = emulator.store.resource_version
    assert backend.cancel(job.pk, job.attempt, grace_s=45) is True
    events = [e for e in emulator.store._history if e.rv > start and e.plural == "pods"]
    kinds = [e.type for e in events]
    # first the annotation (the container sees it), then the pod's own graceful deletion
    assert kinds[:2] == ["MODIFIED", "MODIFIED"], kinds
    annotations = events[0].obj["metadata"]["annotations"]
    assert "karimasu.io/stop-requested-at" in annotations
    assert events[1].obj["metadata"]["deletionGracePeriodSeconds"] == 45
    assert client.BatchV1Api(backend.api_client).list_namespaced_job("karimasu-jobs").items == []
    run_cluster(emulator, 45)  # the pod terminates for the preemption's grace, then goes
    assert [e.type for e in emulator.store._history if e.plural == "pods"][-1] == "DELETED"


def test_a_finished_attempts_log_is_archived_and_outlives_its_job(
    make_admitted, backend, emulator, settings, tmp_path
):
    from rest_framework.test import APIClient

    from scheduler.services import job_logs

    settings.KARIMASU_JOB_LOGS_DIR = tmp_path / "job-logs"
    job = make_admitted(duration=5)
    reconcile(backend, now=timezone.now())
    run_cluster(emulator, 6)
    live = list(backend.logs(job.pk, job.attempt))
    assert live
    reconcile(backend, now=timezone.now())  # sees it succeed: archives the log
    job.refresh_from_db()
    assert job.status == states.SUCCEEDED
    assert job_logs.read_archive(job, job.attempt, None) == live
    # The Job and its pods go (TTL); the log is still served, from the archive.
    backend.cancel(job.pk, job.attempt)
    run_cluster(emulator)
    assert list(backend.logs(job.pk, job.attempt)) == []
    from unittest import mock

    owner = APIClient()
    owner.force_authenticate(job.owner)
    with mock.patch("scheduler.api.jobs.cluster_backend", return_value=backend):
        response = owner.get(f"/api/v1/jobs/{job.pk}/logs/?tail=2")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).decode().splitlines() == live[-2:]
    assert not list((tmp_path / "job-logs").glob(".tmp-*"))


def test_a_long_log_keeps_its_head_and_tail():
    from scheduler.services.job_logs import _capped

    lines = [f"line {i:05d}" for i in range(10_000)]
    kept = list(_capped(lines, 2_000))
    assert kept[0] == "line 00000" and kept[-1] == "line 09999"
    assert any("cut from the middle" in line for line in kept)
    assert sum(len(line) + 1 for line in kept) < 2_200


def test_a_follow_ends_after_its_window():
    import time as clock

    from scheduler.services.job_logs import bounded

    def endless():
        n = 0
        while True:
            clock.sleep(0.05)
            n += 1
            yield f"step {n}"

    started = clock.monotonic()
    lines = list(bounded(endless(), 0.5))
    assert 0.5 <= clock.monotonic() - started < 1.5 and lines


def test_a_job_that_cannot_start_is_requeued_then_failed_with_its_reason(
    make_admitted, backend, emulator, settings
):
    from datetime import timedelta

    settings.KARIMASU_START_TIMEOUT_SECONDS = 600
    settings.KARIMASU_MAX_ATTEMPTS = 1
    job = make_admitted()
    Job.objects.filter(pk=job.pk).update(image="registry.example/does-not-exist:1")
    reconcile(backend, now=timezone.now())
    run_cluster(emulator)
    reconcile(backend, now=timezone.now() + timedelta(seconds=599))
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.STARTING, "image_pull_failure")
    assert "cannot be pulled" in job.message
    # Past the start timeout it gives its GPUs back; the only attempt was used: failed.
    reconcile(backend, now=timezone.now() + timedelta(seconds=601))
    job.refresh_from_db()
    assert job.status == states.FAILED and job.reason == "start_timeout_too_often"
    assert cluster_jobs(backend) == []
    events = list(job.events.values_list("to_status", "reason"))
    assert ("lost", "start_timeout") in events


def test_an_invalid_image_fails_at_once(make_admitted, backend, emulator):
    from unittest import mock

    from scheduler.cluster.backend import PENDING, AttemptState

    job = make_admitted()
    reconcile(backend, now=timezone.now())
    state = AttemptState(
        job_id=job.pk,
        attempt=job.attempt,
        phase=PENDING,
        reason="invalid_image",
        message="The image reference is not valid (InvalidImageName)",
    )
    with mock.patch.object(type(backend), "list_owned", return_value=[state]):
        reconcile(backend, now=timezone.now())
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.FAILED, "invalid_image")


def test_a_job_reading_a_secret_by_reference_is_accepted_by_the_api_server(
    make_admitted, backend, emulator
):
    job = make_admitted(duration=5)
    Job.objects.filter(pk=job.pk).update(
        secret_env={"WANDB_API_KEY": {"secret": "vision-wandb", "key": "api-key"}}
    )
    report = reconcile(backend, now=timezone.now())
    assert report.submitted == [job.pk]
    pod = (
        client.BatchV1Api(backend.api_client)
        .read_namespaced_job(f"karimasu-job-{job.pk}-a1", "karimasu-jobs")
        .spec.template.spec
    )
    (ref,) = [e.value_from for e in pod.containers[0].env if e.name == "WANDB_API_KEY"]
    assert (ref.secret_key_ref.name, ref.secret_key_ref.key) == ("vision-wandb", "api-key")


def test_a_crash_looping_container_shows_on_the_running_row_while_it_lasts(make_admitted):
    from scheduler.cluster.backend import RUNNING, AttemptState
    from scheduler.services.reconcile import apply_attempt_state

    job = make_admitted()
    now = timezone.now()
    looping = AttemptState(job.pk, job.attempt, RUNNING, "crash_loop", "keeps exiting")
    assert apply_attempt_state(job, looping, now=now)
    job.refresh_from_db()
    assert (job.status, job.reason, job.message) == (states.RUNNING, "crash_loop", "keeps exiting")
    assert apply_attempt_state(job, AttemptState(job.pk, job.attempt, RUNNING), now=now)
    job.refresh_from_db()
    assert (job.status, job.reason) == (states.RUNNING, "")
