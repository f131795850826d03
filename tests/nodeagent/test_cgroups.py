"""Process -> pod -> job through /proc/<pid>/cgroup files written to tmp_path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nodeagent.cgroups import ProcessMapper, StaticPodDirectory, pod_uid_from_cgroup
from nodeagent.readings import GpuReading, NodeReading, ProcessReading

UID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
V1 = f"""12:pids:/kubepods/burstable/pod{UID}/0123abcd
11:devices:/kubepods/burstable/pod{UID}/0123abcd
1:name=systemd:/kubepods/burstable/pod{UID}/0123abcd
"""
V2_SYSTEMD = (
    "0::/kubepods.slice/kubepods-burstable.slice/"
    f"kubepods-burstable-pod{UID.replace('-', '_')}.slice/cri-containerd-0123abcd.scope\n"
)
V2_BESTEFFORT_CGROUPFS = f"0::/kubepods/besteffort/pod{UID}/0123abcd\n"
V2_GUARANTEED = f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-o-1.scope\n"
HOST = "0::/user.slice/user-1000.slice/session-4.scope\n"
DOCKER = "0::/system.slice/docker-0123abcd.scope\n"


@pytest.mark.parametrize(
    ("text", "want_uid"),
    [
        pytest.param(V1, UID, id="v1-cgroupfs-burstable"),
        pytest.param(V2_SYSTEMD, UID, id="v2-systemd-underscores"),
        pytest.param(V2_BESTEFFORT_CGROUPFS, UID, id="v2-cgroupfs-besteffort"),
        pytest.param(V2_GUARANTEED, UID, id="v2-systemd-guaranteed"),
        pytest.param(HOST, None, id="host-session-is-no-pod"),
        pytest.param(DOCKER, None, id="plain-docker-is-no-pod"),
        pytest.param("", None, id="empty"),
    ],
)
def test_pod_uid_from_cgroup(text, want_uid):
    assert pod_uid_from_cgroup(text) == want_uid


def write_proc(root, pid: int, text: str) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cgroup").write_text(text)


def node_reading(*pids: int) -> NodeReading:
    return NodeReading(
        at=datetime(2026, 1, 1, tzinfo=UTC),
        gpus=[GpuReading(index=0, processes=[ProcessReading(pid=p) for p in pids])],
    )


def test_processes_map_to_jobs_and_foreign_use(tmp_path):
    other_uid = "11111111-2222-4333-8444-555555555555"
    write_proc(tmp_path, 100, V2_SYSTEMD)  # a Karimasu job's pod
    write_proc(tmp_path, 200, HOST)  # someone's shell on the host: foreign
    write_proc(tmp_path, 300, f"0::/kubepods/pod{other_uid}/c\n")  # a pod that is no job
    directory = StaticPodDirectory(
        lambda: {
            UID: {"karimasu.io/job-id": "42", "karimasu.io/attempt": "2"},
            other_uid: {"app": "jupyter"},
        }
    )
    reading = ProcessMapper(tmp_path, directory).annotate(node_reading(100, 200, 300, 400))
    job, host, jupyter, gone = reading.gpus[0].processes
    assert (job.pod_uid, job.job_id, job.attempt, job.foreign) == (UID, 42, 2, False)
    assert (host.pod_uid, host.foreign) == (None, True)
    assert (jupyter.pod_uid, jupyter.job_id, jupyter.foreign) == (other_uid, None, True)
    assert (gone.pod_uid, gone.foreign) == (None, None)  # no /proc entry: cannot tell


def test_without_a_directory_pods_are_left_to_the_portal(tmp_path):
    write_proc(tmp_path, 100, V1)
    proc = ProcessMapper(tmp_path).annotate(node_reading(100)).gpus[0].processes[0]
    assert (proc.pod_uid, proc.job_id, proc.foreign) == (UID, None, None)


def test_a_failing_directory_does_not_stop_the_reading(tmp_path):
    write_proc(tmp_path, 100, V1)

    def broken():
        raise ConnectionError("api server down")

    proc = ProcessMapper(tmp_path, StaticPodDirectory(broken)).annotate(node_reading(100))
    assert proc.gpus[0].processes[0].foreign is None
