"""The log subresource: generated lines, tailLines, follow, waiting containers."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import NS, job_pods, make_job


def _log(core: client.CoreV1Api, pod: str, **kwargs: object) -> list[str]:
    # The client turns a text body into str(bytes); like the backend, read the raw response.
    response = core.read_namespaced_pod_log(pod, NS, _preload_content=False, **kwargs)
    return response.data.decode().splitlines()


def test_log_grows_one_epoch_line_per_simulated_second(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("talk", duration=10))
    emulator.settle()
    pod = job_pods(core, "talk")[0].metadata.name
    assert len(_log(core, pod)) == 1  # the header
    emulator.advance(4)
    lines = _log(core, pod)
    assert lines[0].startswith(f"[karimasu-sim] {pod} on tesla-")
    assert [line.split()[1] for line in lines[1:]] == ["1/10", "2/10", "3/10", "4/10"]
    emulator.advance(6)
    lines = _log(core, pod)
    assert len(lines) == 1 + 10 + 1
    assert lines[-1].endswith("finished with exit code 0")


def test_tail_lines_and_timestamps(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("tail", duration=10))
    emulator.advance(10)
    pod = job_pods(core, "tail")[0].metadata.name
    tail = _log(core, pod, tail_lines=2)
    assert tail == ["epoch 10/10 loss=1.0000", f"[karimasu-sim] {pod} finished with exit code 0"]
    stamped = _log(core, pod, tail_lines=1, timestamps=True)
    assert stamped[0].startswith("2026-01-01T00:00:10Z ")


def test_follow_streams_new_lines_until_the_container_ends(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("follow", duration=3))
    emulator.settle()
    pod = job_pods(core, "follow")[0].metadata.name
    response = core.read_namespaced_pod_log(
        pod, NS, follow=True, _preload_content=False, _request_timeout=5
    )
    received: list[str] = []
    reader = threading.Thread(
        target=lambda: received.extend(
            line.decode() for chunk in response.stream(amt=None) for line in chunk.splitlines()
        )
    )
    reader.start()
    for _ in range(3):
        time.sleep(0.15)  # let the stream poll between simulated seconds
        emulator.advance(1)
    reader.join(timeout=5)
    assert not reader.is_alive(), "follow must end when the container terminates"
    assert len(received) == 1 + 3 + 1
    assert received[-1].endswith("finished with exit code 0")


def test_log_of_a_pod_that_has_not_started_is_400(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, make_job("nopull", image="x/does-not-exist:1"))
    emulator.settle()
    pod = job_pods(core, "nopull")[0].metadata.name
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log(pod, NS)
    assert exc.value.status == 400
    assert "is waiting to start" in exc.value.body
