"""Pods annotated ``emulator.karimasu.io/run`` run as real local processes (issue 16)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kube_emulator.processes import _free_ports, expand

from .conftest import NS
from .workspace_helpers import (
    alive,
    is_ready,
    pid_of,
    process_pod,
    start_ready,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
SLEEPER = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(600)"
#: Listens on $PORT and says nothing.
QUIET = (
    "import os, socket, time; s = socket.socket(); s.bind(('127.0.0.1', int(os.environ['PORT'])));"
    " s.listen(); time.sleep(600)"
)
#: Ignores SIGTERM: only the grace period's SIGKILL ends it.
STUBBORN = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('pid', os.getpid(), flush=True); time.sleep(600)"
)


def _log(core: client.CoreV1Api, name: str) -> str:
    """The Pod's log ("" while its container has not started)."""
    try:
        return core.read_namespaced_pod_log(name, NS, _preload_content=False).data.decode()
    except ApiException as error:
        if error.status == 400 and "waiting to start" in str(error.body):
            return ""
        raise


def _phase(core: client.CoreV1Api, name: str) -> str:
    return core.read_namespaced_pod(name, NS).status.phase


def _gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, NS)
    except ApiException as error:
        return error.status == 404
    return False


def test_a_process_pod_runs_its_command_with_env_port_and_logs(live, live_core) -> None:
    code = (
        "import os, socket; s = socket.socket(); s.bind(('127.0.0.1', int(os.environ['PORT']))); "
        "s.listen(); print('greeting', os.environ['GREETING'], os.environ['PORT_8888'], "
        "os.environ['HOSTNAME'], flush=True); import time; time.sleep(600)"
    )
    pod = process_pod("hello", command=[sys.executable, "-c", code], env={"GREETING": "hi $(PORT)"})
    started = start_ready(live_core, pod)
    assert started.status.phase == "Running"
    assert started.status.pod_ip == "127.0.0.1"
    assert started.status.container_statuses[0].ready is True
    port = live.controller.kubelet.processes.get(started.metadata.uid).ports[8888]
    log = wait_for(lambda: "greeting" in _log(live_core, "hello") and _log(live_core, "hello"))
    # $(PORT) in an env value is not expanded (PORT is set after the container's env, as a
    # variable defined later is not referable), the port vars are the local port, the hostname
    # is the Pod's name.
    assert f"greeting hi $(PORT) {port} hello" in log


def test_dollar_references_expand_as_the_kubelet_does() -> None:
    env = {"PORT": "4242", "BASE": "/s/1/"}
    assert expand("--port=$(PORT) --base=$(BASE)", env) == "--port=4242 --base=/s/1/"
    assert expand("$(MISSING) $$(PORT) $$", env) == "$(MISSING) $(PORT) $"


def test_a_process_pod_is_not_ready_until_its_port_listens(live, live_core) -> None:
    code = (
        "import os, socket, time; time.sleep(1.5); s = socket.socket(); "
        "s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen(); time.sleep(600)"
    )
    live_core.create_namespaced_pod(NS, process_pod("slow", command=[sys.executable, "-c", code]))
    wait_for(lambda: _phase(live_core, "slow") == "Running")
    assert not is_ready(live_core, "slow")
    wait_for(lambda: is_ready(live_core, "slow"), what="Ready once listening")


def test_process_exit_ends_the_pod_with_its_exit_code(live, live_core) -> None:
    code = "import sys; print('bye', flush=True); sys.exit(3)"
    live_core.create_namespaced_pod(NS, process_pod("quits", command=[sys.executable, "-c", code]))
    wait_for(lambda: _phase(live_core, "quits") == "Failed", what="Failed")
    state = live_core.read_namespaced_pod("quits", NS).status.container_statuses[0].state
    assert state.terminated.exit_code == 3
    assert state.terminated.reason == "Error"
    assert _log(live_core, "quits") == "bye\n"


def test_a_running_process_pod_that_printed_nothing_has_an_empty_log(live, live_core) -> None:
    start_ready(live_core, process_pod("quiet", command=[sys.executable, "-c", QUIET]))
    response = live_core.read_namespaced_pod_log("quiet", NS, _preload_content=False)
    assert (response.status, response.data) == (200, b"")


def test_a_process_killed_by_a_signal_exits_128_plus_the_signal(live, live_core) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    live_core.create_namespaced_pod(NS, process_pod("shot", command=[sys.executable, "-c", code]))
    wait_for(lambda: _phase(live_core, "shot") == "Failed", what="Failed")
    state = live_core.read_namespaced_pod("shot", NS).status.container_statuses[0].state
    assert state.terminated.exit_code == 137


def test_a_process_that_succeeds_makes_the_pod_succeeded(live, live_core) -> None:
    code = "print('done')"
    live_core.create_namespaced_pod(NS, process_pod("ok", command=[sys.executable, "-c", code]))
    wait_for(lambda: _phase(live_core, "ok") == "Succeeded", what="Succeeded")


def test_a_command_that_cannot_start_fails_the_pod(live, live_core) -> None:
    pod = process_pod("nope", command=["/nonexistent/karimasu-no-such-binary"])
    live_core.create_namespaced_pod(NS, pod)
    wait_for(lambda: _phase(live_core, "nope") == "Failed", what="Failed")
    state = live_core.read_namespaced_pod("nope", NS).status.container_statuses[0].state
    assert (state.terminated.exit_code, state.terminated.reason) == (128, "StartError")


def test_restart_policy_always_restarts_the_process_after_back_off(live, live_core) -> None:
    code = "import sys; sys.exit(1)"
    pod = process_pod("loop", command=[sys.executable, "-c", code], restart_policy="Always")
    live_core.create_namespaced_pod(NS, pod)

    def backing_off() -> bool:
        status = live_core.read_namespaced_pod("loop", NS).status
        waiting = (status.container_statuses or [None])[0]
        return bool(waiting and waiting.state.waiting and waiting.restart_count == 1)

    wait_for(backing_off, what="CrashLoopBackOff")
    status = live_core.read_namespaced_pod("loop", NS).status
    assert status.phase == "Running"
    assert status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert status.container_statuses[0].last_state.terminated.exit_code == 1


def test_deleting_a_pod_sends_sigterm_and_the_pod_goes_when_the_process_exits(
    live, live_core
) -> None:
    start_ready(live_core, process_pod("ws", mode="workspace", grace=30))
    pid = pid_of(live, "ws")
    assert alive(pid)
    started = time.monotonic()
    live_core.delete_namespaced_pod("ws", NS)
    wait_for(lambda: _gone(live_core, "ws"), what="pod removed")
    assert time.monotonic() - started < 15  # the workspace exits on SIGTERM: no 30 s wait
    wait_for(lambda: not alive(pid), what="process gone")


def test_a_process_ignoring_sigterm_is_killed_when_the_grace_runs_out(live, live_core) -> None:
    pod = process_pod("stubborn", command=[sys.executable, "-c", STUBBORN], ports=(), grace=5)
    live_core.create_namespaced_pod(NS, pod)
    wait_for(lambda: "pid" in _log(live_core, "stubborn"), what="started")
    pid = pid_of(live, "stubborn")
    live_core.delete_namespaced_pod("stubborn", NS)
    time.sleep(1.0)
    assert alive(pid)  # SIGTERM ignored, grace not over
    assert live_core.read_namespaced_pod("stubborn", NS).metadata.deletion_timestamp
    wait_for(lambda: not alive(pid), timeout=20, what="SIGKILL after the grace")
    wait_for(lambda: _gone(live_core, "stubborn"), what="pod removed")


def test_closing_the_emulator_leaves_no_process(live, live_core) -> None:
    start_ready(live_core, process_pod("one", mode="workspace"))
    live_core.create_namespaced_pod(
        NS, process_pod("two", command=[sys.executable, "-c", STUBBORN], ports=())
    )
    wait_for(lambda: "pid" in _log(live_core, "two"), what="started")
    pids = [pid_of(live, "one"), pid_of(live, "two")]
    assert all(alive(pid) for pid in pids)
    live.close()
    assert not any(alive(pid) for pid in pids)


def _run_emulator(tmp_path: Path, one_node_file: Path) -> tuple[subprocess.Popen[str], str]:
    kubeconfig = tmp_path / "sub-kubeconfig"
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kube_emulator",
            "--nodes-file",
            str(one_node_file),
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emulator.stdout is not None
    emulator.stdout.readline()  # the URL: it serves
    return emulator, str(kubeconfig)


def _child_pid(core: client.CoreV1Api, name: str) -> int:
    line = wait_for(lambda: _log(core, name).strip(), what="the child's pid")
    return int(line.split()[1])


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_an_emulator_process_that_ends_leaves_no_child(
    tmp_path: Path, one_node_file: Path, how: signal.Signals
) -> None:
    emulator, kubeconfig = _run_emulator(tmp_path, one_node_file)
    api = config.new_client_from_config(config_file=kubeconfig)
    try:
        core = client.CoreV1Api(api)
        pod = process_pod("orphan", command=[sys.executable, "-c", STUBBORN], ports=())
        core.create_namespaced_pod(NS, pod)
        pid = _child_pid(core, "orphan")
        assert alive(pid)
        emulator.send_signal(how)
        emulator.wait(timeout=20)
        wait_for(lambda: not alive(pid), timeout=10, what="the child killed with the emulator")
    finally:
        api.close()
        if emulator.poll() is None:
            emulator.kill()
            emulator.wait()


def test_a_pod_deleted_in_back_off_goes_without_starting_again(live, live_core) -> None:
    code = "import sys; sys.exit(1)"
    pod = process_pod("crashy", command=[sys.executable, "-c", code], restart_policy="Always")
    live_core.create_namespaced_pod(NS, pod)

    def waiting() -> bool:
        statuses = live_core.read_namespaced_pod("crashy", NS).status.container_statuses
        return bool(statuses and statuses[0].state.waiting and statuses[0].restart_count)

    wait_for(waiting, what="CrashLoopBackOff")
    uid = live_core.read_namespaced_pod("crashy", NS).metadata.uid
    live_core.delete_namespaced_pod("crashy", NS)  # 30 s grace: nothing runs to wait for
    # Removed long before the 10 s back-off would have started the process again.
    wait_for(lambda: _gone(live_core, "crashy"), timeout=8, what="removed at once")
    assert live.controller.kubelet.processes.get(uid) is None
    events = live_core.list_namespaced_event(NS, field_selector="involvedObject.name=crashy")
    assert [e.reason for e in events.items].count("Started") == 1


def test_local_ports_are_distinct_and_avoid_those_of_running_pods() -> None:
    first = _free_ports(8, set())
    assert len(set(first)) == 8
    again = _free_ports(8, set(first))
    assert len(set(again)) == 8 and not set(again) & set(first)


def test_on_a_fake_clock_the_process_is_looked_at_when_the_test_settles(emulator, core) -> None:
    core.create_namespaced_pod(NS, process_pod("fake-time", mode="workspace"))
    emulator.settle()
    assert core.read_namespaced_pod("fake-time", NS).status.phase == "Running"

    def settled_ready() -> bool:
        emulator.settle()
        return is_ready(core, "fake-time")

    wait_for(settled_ready, what="Ready after settling")
    page = core.connect_get_namespaced_pod_proxy_with_path(
        "fake-time", NS, "", _preload_content=False
    )
    assert b"Karimasu workspace" in page.data
    pid = pid_of(emulator, "fake-time")
    emulator.close()
    assert not alive(pid)
