"""CrashLoopBackOff: a container that exits under restartPolicy Always/OnFailure is restarted
after 10 s, 20 s, 40 s... at most 300 s, waiting with reason CrashLoopBackOff meanwhile."""

from __future__ import annotations

from kube_emulator import resources as r
from kube_emulator.clock import parse_rfc3339

from .conftest import NS, condition, job_pods, make_job, make_pod


def _create(core, name: str, policy: str, exit_code: int, duration: float = 1) -> None:
    body = core.api_client.sanitize_for_serialization(make_pod(name, restart_policy=policy))
    body["metadata"]["annotations"] = {
        "karimasu.io/sim-duration-seconds": str(duration),
        "karimasu.io/sim-exit-code": str(exit_code),
    }
    core.create_namespaced_pod(NS, body)


def _restart_gaps(emulator, name: str, seconds: int, every: int = 5) -> list[float]:
    """Seconds between each container exit and the next start (from the timestamps), looking
    every ``every`` seconds: runs last longer than that, so none is missed."""
    gaps, last_exit = [], None
    for _ in range(seconds // every):
        emulator.advance(every, step=every)
        status = emulator.store.get(r.PODS, NS, name)["status"]["containerStatuses"][0]
        state = status["state"]
        if "waiting" in state and last_exit is None:
            assert state["waiting"]["reason"] == "CrashLoopBackOff"
            last_exit = parse_rfc3339(status["lastState"]["terminated"]["finishedAt"])
        elif "running" in state and last_exit is not None:
            gaps.append(parse_rfc3339(state["running"]["startedAt"]) - last_exit)
            last_exit = None
    return gaps


def test_back_off_doubles_from_10_s_up_to_300_s(emulator, core) -> None:
    _create(core, "crasher", "Always", exit_code=2, duration=10)
    emulator.settle()
    gaps = _restart_gaps(emulator, "crasher", 1400)
    assert gaps[:8] == [10, 20, 40, 80, 160, 300, 300, 300]


def test_waiting_state_restart_count_and_last_state(emulator, core) -> None:
    _create(core, "flaky", "OnFailure", exit_code=3, duration=5)
    emulator.advance(6)
    pod = core.read_namespaced_pod("flaky", NS)
    [status] = pod.status.container_statuses
    assert pod.status.phase == "Running"  # a restarting Pod stays Running
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert "back-off 10s restarting failed container=main" in status.state.waiting.message
    assert (status.restart_count, status.ready, status.started) == (1, False, False)
    assert status.last_state.terminated.exit_code == 3
    assert condition(pod, "Ready").status == "False"
    emulator.advance(10)
    [status] = core.read_namespaced_pod("flaky", NS).status.container_statuses
    assert status.state.running is not None and status.restart_count == 1
    reasons = [
        e.reason for e in core.list_namespaced_event(NS).items if e.involved_object.name == "flaky"
    ]
    assert "BackOff" in reasons


def test_a_clean_exit_under_always_also_backs_off_but_not_under_on_failure(emulator, core) -> None:
    _create(core, "always", "Always", exit_code=0)
    _create(core, "once", "OnFailure", exit_code=0)
    emulator.advance(3)
    always = core.read_namespaced_pod("always", NS).status
    assert always.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert core.read_namespaced_pod("once", NS).status.phase == "Succeeded"


def test_job_with_on_failure_counts_restarts_against_its_backoff_limit(
    emulator, core, batch
) -> None:
    batch.create_namespaced_job(
        NS, make_job("retry", duration=1, exit_code=1, backoff_limit=2, restart_policy="OnFailure")
    )
    emulator.advance(13)  # ran, backed off 10 s, ran again (and is backing off 20 s)
    [pod] = job_pods(core, "retry")
    assert pod.status.container_statuses[0].restart_count == 2
    emulator.advance(25)
    job = batch.read_namespaced_job("retry", NS)
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
