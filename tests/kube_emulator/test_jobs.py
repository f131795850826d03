"""The simulated Job controller and kubelet, driven by a FakeClock."""

from __future__ import annotations

import re

import pytest
from kubernetes import client

from kube_emulator import EmulatorHandle

from .conftest import NS, condition, job_pods, make_job


def test_job_creates_a_pod_that_runs_then_succeeds(
    emulator: EmulatorHandle, core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    job = batch.create_namespaced_job(NS, make_job("train-1", duration=30))
    emulator.settle()
    [pod] = job_pods(core, "train-1")
    assert re.fullmatch(r"train-1-[a-z0-9]{5}", pod.metadata.name)
    assert pod.metadata.labels["controller-uid"] == job.metadata.uid
    assert pod.metadata.labels["app"] == "train"
    [owner] = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Job",
        "train-1",
        job.metadata.uid,
        True,
    )
    assert pod.status.phase == "Running"
    assert pod.spec.node_name.startswith("tesla-")
    assert condition(pod, "PodScheduled").status == "True"
    assert pod.status.container_statuses[0].state.running.started_at is not None
    running_job = batch.read_namespaced_job("train-1", NS)
    assert (running_job.status.active, running_job.status.ready) == (1, 1)
    assert running_job.status.start_time is not None

    emulator.advance(29)
    assert job_pods(core, "train-1")[0].status.phase == "Running"
    emulator.advance(1)

    [pod] = job_pods(core, "train-1")
    assert pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    done = batch.read_namespaced_job("train-1", NS)
    assert done.status.succeeded == 1
    assert done.status.active is None  # zero counts are omitted, as upstream
    assert condition(done, "Complete").status == "True"
    assert (done.status.completion_time - done.status.start_time).total_seconds() == 30


@pytest.mark.parametrize(
    ("annotations", "want_exit_code", "want_reason"),
    [
        pytest.param({"karimasu.io/sim-exit-code": "3"}, 3, "Error", id="nonzero-exit-is-error"),
        pytest.param({"karimasu.io/sim-oom-killed": "true"}, 137, "OOMKilled", id="oom-killed"),
    ],
)
def test_failing_run_fails_the_pod_and_the_job(
    emulator, core, batch, annotations, want_exit_code: int, want_reason: str
) -> None:
    batch.create_namespaced_job(NS, make_job("bad", duration=5, annotations=annotations))
    emulator.advance(5)
    [pod] = job_pods(core, "bad")
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (want_exit_code, want_reason)
    job = batch.read_namespaced_job("bad", NS)
    assert job.status.failed == 1
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"


def test_env_var_sets_the_duration_when_no_annotation_does(emulator, core, batch) -> None:
    job = make_job("env", duration=None)
    job.spec.template.spec.containers[0].env = [
        client.V1EnvVar(name="KARIMASU_SIM_DURATION_SECONDS", value="3")
    ]
    batch.create_namespaced_job(NS, job)
    emulator.advance(3)
    assert job_pods(core, "env")[0].status.phase == "Succeeded"


def test_backoff_limit_retries_failed_pods_then_gives_up(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("flaky", duration=10, exit_code=1, backoff_limit=2))
    emulator.advance(10)
    assert [p.status.phase for p in job_pods(core, "flaky")] == ["Failed"]
    emulator.advance(10)  # upstream's back-off: 10 s before the second pod
    assert sorted(p.status.phase for p in job_pods(core, "flaky")) == ["Failed", "Running"]
    emulator.advance(10 + 20 + 10)  # second run fails, 20 s back-off, third run fails
    pods = job_pods(core, "flaky")
    assert [p.status.phase for p in pods] == ["Failed"] * 3
    job = batch.read_namespaced_job("flaky", NS)
    assert job.status.failed == 3
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    assert condition(job, "Complete") is None


def test_retry_after_failed_attempts_succeeds(emulator, core, batch) -> None:
    notes = {"karimasu.io/sim-fail-attempts": "1"}
    batch.create_namespaced_job(
        NS, make_job("second-time", duration=5, annotations=notes, backoff_limit=3)
    )
    emulator.advance(5 + 10 + 5)
    phases = sorted(p.status.phase for p in job_pods(core, "second-time"))
    assert phases == ["Failed", "Succeeded"]
    job = batch.read_namespaced_job("second-time", NS)
    assert (job.status.failed, job.status.succeeded) == (1, 1)
    assert condition(job, "Complete").status == "True"


def test_on_failure_restarts_the_container_in_place(emulator, core, batch) -> None:
    batch.create_namespaced_job(
        NS,
        make_job("inplace", duration=5, exit_code=2, backoff_limit=1, restart_policy="OnFailure"),
    )
    emulator.advance(5)
    [pod] = job_pods(core, "inplace")
    status = pod.status.container_statuses[0]
    assert (pod.status.phase, status.restart_count) == ("Running", 1)
    assert status.last_state.terminated.exit_code == 2
    assert status.state.waiting.reason == "CrashLoopBackOff"
    emulator.advance(15)  # 10 s back-off, then the second run of 5 s
    job = batch.read_namespaced_job("inplace", NS)
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    assert job_pods(core, "inplace") == []  # active pods are deleted when the job fails


def test_active_deadline_kills_the_pod_and_fails_with_deadline_exceeded(
    emulator, core, batch
) -> None:
    batch.create_namespaced_job(NS, make_job("slow", duration=600, active_deadline_seconds=60))
    emulator.advance(59)
    assert batch.read_namespaced_job("slow", NS).status.active == 1
    emulator.advance(1)
    job = batch.read_namespaced_job("slow", NS)
    failed = condition(job, "Failed")
    assert (failed.status, failed.reason) == ("True", "DeadlineExceeded")
    assert job.status.active is None
    assert job_pods(core, "slow") == []


@pytest.mark.parametrize(
    ("policy", "job_waits", "pods_terminate"),
    [
        pytest.param("Foreground", True, True, id="foreground-deletes-pods-first"),
        pytest.param("Background", False, True, id="background-leaves-pods-to-the-gc"),
        pytest.param("Orphan", False, False, id="orphan-keeps-pods-without-owner"),
        pytest.param(None, False, False, id="batch-v1-default-is-orphan"),
    ],
)
def test_deleting_a_job_follows_propagation_policy(
    emulator, core, batch, policy, job_waits, pods_terminate
) -> None:
    batch.create_namespaced_job(NS, make_job("doomed", duration=100))
    emulator.settle()
    answer = batch.delete_namespaced_job("doomed", NS, propagation_policy=policy)
    # Foreground: the Job stays (deletionTimestamp, finalizer) until its Pods are gone.
    assert (answer.status == "Success") != job_waits
    emulator.settle()
    jobs = batch.list_namespaced_job(NS).items
    assert [j.metadata.finalizers for j in jobs] == ([["foregroundDeletion"]] if job_waits else [])
    [pod] = job_pods(core, "doomed")  # a running Pod terminates for its grace period
    assert (pod.metadata.deletion_timestamp is not None) == pods_terminate
    assert pod.status.phase == "Running"
    assert bool(pod.metadata.owner_references) == pods_terminate
    emulator.advance(30)
    assert len(job_pods(core, "doomed")) == (0 if pods_terminate else 1)
    assert batch.list_namespaced_job(NS).items == []


def test_ttl_after_finished_deletes_the_job_and_its_pods(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("short", duration=5, ttl_seconds_after_finished=30))
    emulator.advance(5 + 29)
    assert [j.metadata.name for j in batch.list_namespaced_job(NS).items] == ["short"]
    emulator.advance(1)
    assert batch.list_namespaced_job(NS).items == []
    assert job_pods(core, "short") == []


def test_missing_image_waits_in_image_pull_back_off(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("typo", image="registry.local/does-not-exist:1"))
    emulator.settle()
    [pod] = job_pods(core, "typo")
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "ErrImagePull"
    emulator.advance(5)
    [pod] = job_pods(core, "typo")
    assert pod.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    reasons = {e.reason for e in core.list_namespaced_event(NS).items}
    assert {"Failed", "BackOff"} <= reasons


def test_suspend_deletes_active_pods_and_resume_starts_again(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("pausable", duration=100))
    emulator.settle()
    batch.patch_namespaced_job("pausable", NS, {"spec": {"suspend": True}})
    emulator.settle()
    job = batch.read_namespaced_job("pausable", NS)
    assert condition(job, "Suspended").status == "True"
    assert job_pods(core, "pausable") == []
    batch.patch_namespaced_job("pausable", NS, {"spec": {"suspend": False}})
    emulator.settle()
    assert [p.status.phase for p in job_pods(core, "pausable")] == ["Running"]
    assert condition(batch.read_namespaced_job("pausable", NS), "Suspended").status == "False"


def test_gpu_utilization_annotation_is_exposed_for_telemetry(emulator, core, batch) -> None:
    notes = {"karimasu.io/sim-gpu-utilization": "85"}
    batch.create_namespaced_job(NS, make_job("busy", annotations=notes))
    emulator.settle()
    [pod] = job_pods(core, "busy")
    params = emulator.controller.simulation_params(NS, pod.metadata.name)
    assert params.gpu_utilization == "85"
    assert params.duration_seconds == 10
