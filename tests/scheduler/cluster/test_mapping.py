"""Pure translation between Karimasu's data and Kubernetes objects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.cluster import backend as cluster
from scheduler.cluster.backend import JobSpec, Mount
from scheduler.cluster.mapping import (
    attempt_state,
    job_manifest,
    label_value,
    node_info,
    parse_quantity,
)


def make_spec(**overrides) -> JobSpec:
    values = dict(
        job_id=7,
        attempt=2,
        name="resnet",
        image="pytorch/pytorch:2.4",
        command=["python"],
        args=["train.py", "--lr", "0.1"],
        env={"SEED": "1"},
        gpus=2,
        cpu_millis=4000,
        memory_mb=16384,
        node_name="tesla-02",
        max_runtime_s=3600,
        user="alice",
        team="vision",
    )
    values.update(overrides)
    return JobSpec(**values)


def test_manifest_pins_the_node_and_requests_gpus_cpu_memory():
    body = job_manifest(make_spec(), namespace="karimasu-jobs")
    assert body["metadata"]["name"] == "karimasu-job-7-a2"
    pod = body["spec"]["template"]["spec"]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["tesla-02"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == {
        "cpu": "4000m",
        "memory": "16384Mi",
        "nvidia.com/gpu": "2",
        "ephemeral-storage": "20Gi",
    }
    assert resources["limits"]["nvidia.com/gpu"] == "2"
    assert body["spec"]["activeDeadlineSeconds"] == 3600
    assert body["spec"]["backoffLimit"] == 0
    assert body["spec"]["ttlSecondsAfterFinished"] == 3600
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_manifest_labels_identify_job_attempt_user_and_team():
    labels = job_manifest(make_spec(user="bob@example.com"), namespace="ns")["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/managed-by": "karimasu",
        "karimasu.io/job-id": "7",
        "karimasu.io/attempt": "2",
        "karimasu.io/user": "bob_example.com",
        "karimasu.io/team": "vision",
    }


def test_manifest_meets_the_restricted_profile():
    pod = job_manifest(make_spec(), namespace="ns")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["hostNetwork"] is False
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert all("hostPath" not in v for v in pod["volumes"])


def test_manifest_without_gpus_requests_none():
    pod = job_manifest(make_spec(gpus=0), namespace="ns")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["requests"]


def test_manifest_mounts_named_volumes_and_pull_secrets():
    spec = make_spec(
        mounts=[Mount("datasets", "datasets-pvc", "/data", read_only=True)],
        image_pull_secrets=["registry"],
    )
    pod = job_manifest(spec, namespace="ns")["spec"]["template"]["spec"]
    assert {
        "name": "datasets",
        "persistentVolumeClaim": {"claimName": "datasets-pvc", "readOnly": True},
    } in pod["volumes"]
    assert {"name": "datasets", "mountPath": "/data", "readOnly": True} in pod["containers"][0][
        "volumeMounts"
    ]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]


@pytest.mark.parametrize(
    "text, want",
    [
        ("ok-name", "ok-name"),
        ("-leading", "leading"),
        ("a" * 80, "a" * 63),
        ("@@@", "unknown"),
        ("山田", "unknown"),
        ("yamada山田", "yamada"),
    ],
    ids=[
        "plain",
        "strip-edges",
        "truncate",
        "nothing-left",
        "non-ascii-replaced",
        "non-ascii-tail-stripped",
    ],
)
def test_label_value(text, want):
    assert label_value(text) == want


@pytest.mark.parametrize(
    "quantity, want",
    [("2", 2), ("1500m", 1.5), ("64Gi", 64 * 2**30), ("1M", 10**6), ("", 0), (None, 0)],
)
def test_parse_quantity(quantity, want):
    assert float(parse_quantity(quantity)) == pytest.approx(want)


def test_node_info_reads_gpu_feature_discovery_labels():
    node = {
        "metadata": {
            "name": "tesla-01",
            "labels": {"nvidia.com/gpu.product": "Tesla-V100", "nvidia.com/gpu.memory": "16384"},
        },
        "spec": {
            "unschedulable": True,
            "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
        },
        "status": {
            "capacity": {"nvidia.com/gpu": "2"},
            "allocatable": {"nvidia.com/gpu": "2", "cpu": "31500m", "memory": "125Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    info = node_info(node)
    assert (info.gpu_model, info.gpu_memory_mb, info.gpu_capacity) == ("Tesla-V100", 16384, 2)
    assert info.cpu_allocatable_millis == 31500
    assert info.memory_allocatable_mb == 125 * 1024
    assert info.ready and info.cordoned
    assert info.taints == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]


def test_node_without_gpus_or_ready_condition():
    info = node_info({"metadata": {"name": "cpu-1"}, "status": {}})
    assert (info.gpu_capacity, info.ready, info.gpu_model) == (0, False, "")


# --- attempt_state -------------------------------------------------------------------------

LABELS = {"karimasu.io/job-id": "7", "karimasu.io/attempt": "2", "job-name": "karimasu-job-7-a2"}


def job(conditions=(), **status):
    return {
        "metadata": {"name": "karimasu-job-7-a2", "labels": LABELS},
        "status": {"conditions": list(conditions), **status},
    }


def pod(
    phase="Pending", *, node="tesla-02", conditions=(), waiting=None, terminated=None, reason=None
):
    status = {"phase": phase, "conditions": list(conditions)}
    if reason:
        status["reason"] = reason
    state = {}
    if waiting:
        state["waiting"] = {"reason": waiting, "message": f"{waiting} happened"}
    if terminated:
        state["terminated"] = terminated
    status["containerStatuses"] = [{"name": "main", "state": state}]
    return {
        "metadata": {"name": "p", "labels": LABELS, "creationTimestamp": "2026-11-23T10:00:00Z"},
        "spec": {"nodeName": node},
        "status": status,
    }


COMPLETE = {"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-23T11:00:00Z"}


@pytest.mark.parametrize(
    "job_obj, pods, want_phase, want_reason",
    [
        pytest.param(job(), [], cluster.PENDING, "creating", id="no-pod-yet"),
        pytest.param(
            job(),
            [
                pod(
                    conditions=[
                        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
                    ]
                )
            ],
            cluster.PENDING,
            "unschedulable",
            id="unschedulable",
        ),
        pytest.param(
            job(),
            [pod(waiting="ImagePullBackOff")],
            cluster.PENDING,
            "image_pull_failure",
            id="image-pull-failure",
        ),
        pytest.param(
            job(),
            [pod(waiting="ContainerCreating")],
            cluster.PENDING,
            "starting",
            id="container-creating",
        ),
        pytest.param(
            job(), [pod(waiting="InvalidImageName")], cluster.PENDING, "invalid_image", id="bad"
        ),
        pytest.param(
            job(),
            [pod(waiting="CreateContainerConfigError")],
            cluster.PENDING,
            "container_config_error",
            id="config-error",
        ),
        pytest.param(
            job(),
            [pod(waiting="RunContainerError")],
            cluster.PENDING,
            "container_start_error",
            id="run-container-error",
        ),
        pytest.param(
            job(startTime="2026-11-23T10:00:05Z"),
            [pod("Running")],
            cluster.RUNNING,
            "",
            id="running",
        ),
        pytest.param(
            job(),
            [pod("Running", waiting="CrashLoopBackOff")],
            cluster.RUNNING,
            "crash_loop",
            id="restarting-container",
        ),
        pytest.param(
            job(),
            [pod(waiting="CrashLoopBackOff")],
            cluster.PENDING,
            "crash_loop",
            id="init-container-crash-loop",
        ),
        pytest.param(
            job([COMPLETE]),
            [pod("Succeeded", terminated={"exitCode": 0})],
            cluster.SUCCEEDED,
            "",
            id="complete",
        ),
        pytest.param(
            job([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]),
            [pod("Failed")],
            cluster.TIMED_OUT,
            "deadline_exceeded",
            id="deadline",
        ),
        pytest.param(
            job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
            [pod("Failed", terminated={"exitCode": 137, "reason": "OOMKilled"})],
            cluster.FAILED,
            "oom_killed",
            id="oom-killed",
        ),
        pytest.param(
            job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
            [pod("Failed", terminated={"exitCode": 2, "reason": "Error"})],
            cluster.FAILED,
            "error",
            id="non-zero-exit",
        ),
        pytest.param(
            job(), [pod("Failed", reason="Evicted")], cluster.FAILED, "evicted", id="evicted"
        ),
        pytest.param(job(), [pod("Unknown")], cluster.FAILED, "node_lost", id="node-lost"),
        pytest.param(
            job(),
            [pod("Failed", terminated={"exitCode": 1})],
            cluster.PENDING,
            "retrying",
            id="failed-pod-with-retries-left",
        ),
    ],
)
def test_attempt_state(job_obj, pods, want_phase, want_reason):
    state = attempt_state(job_obj, pods)
    assert state is not None
    assert (state.job_id, state.attempt) == (7, 2)
    assert (state.phase, state.reason) == (want_phase, want_reason)


def test_attempt_state_carries_exit_code_node_and_times():
    state = attempt_state(
        job([COMPLETE], startTime="2026-11-23T10:00:05Z"),
        [pod("Succeeded", terminated={"exitCode": 0})],
    )
    assert state.exit_code == 0
    assert state.node_name == "tesla-02"
    assert state.started_at == datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)
    assert state.finished_at == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


def test_job_without_karimasu_labels_is_ignored():
    assert attempt_state({"metadata": {"name": "x", "labels": {}}}, []) is None


def test_pods_are_shaped_for_real_training_images():
    spec = make_spec(memory_mb=16384, priority_class_name="karimasu-training", scratch_gb=50)
    pod = job_manifest(spec, namespace="ns")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # /dev/shm in memory, beyond the runtime's 64 MB (DataLoader workers, NCCL)
    shm = volumes[mounts["/dev/shm"]]  # noqa: S108 - the pod's shared memory
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "8192Mi"}
    # a writable HOME and scratch, the scratch requested as ephemeral storage
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HOME"] == "/home/karimasu" and "emptyDir" in volumes[mounts["/home/karimasu"]]
    assert volumes[mounts["/scratch"]]["emptyDir"] == {"sizeLimit": "50Gi"}
    assert container["resources"]["requests"]["ephemeral-storage"] == "50Gi"
    # volumes writable by the job's group, and a priority class so other pods do not evict it
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    assert pod["priorityClassName"] == "karimasu-training"
    # the stop signal: the pod's annotations as a file
    info = volumes[mounts[env["KARIMASU_POD_INFO"]]]["downwardAPI"]["items"][0]
    assert info["fieldRef"]["fieldPath"] == "metadata.annotations"
    assert (
        "priorityClassName"
        not in job_manifest(make_spec(), namespace="ns")["spec"]["template"]["spec"]
    )


def test_a_users_home_wins_over_the_default():
    pod = job_manifest(make_spec(env={"HOME": "/workspace"}), namespace="ns")
    env = pod["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HOME", "value": "/workspace"} in env


def _pod(name, namespace="kube-system", node="n1", phase="Running", labels=None, **spec):
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"nodeName": node, **spec},
        "status": {"phase": phase},
    }


def _container(requests=None, limits=None, **extra):
    return {"resources": {"requests": requests or {}, "limits": limits or {}}, **extra}


def test_pod_requests_count_init_containers_sidecars_and_overhead():
    from scheduler.cluster.mapping import pod_requests

    pod = _pod(
        "p",
        containers=[_container({"cpu": "1", "memory": "1Gi"}), _container(limits={"cpu": "1"})],
        initContainers=[
            _container({"cpu": "3"}),  # runs alone before the app: the peak is 3
            _container({"memory": "512Mi"}, restartPolicy="Always"),  # a sidecar: stays
        ],
        overhead={"cpu": "250m"},
    )
    wanted = pod_requests(pod)
    assert wanted["cpu"] == 3 + parse_quantity("250m")
    assert wanted["memory"] == parse_quantity("1Gi") + parse_quantity("512Mi")


def test_foreign_usage_skips_karimasus_finished_and_unbound_pods():
    from scheduler.cluster.mapping import foreign_usage

    gpu = {"nvidia.com/gpu": "1", "cpu": "500m", "memory": "1Mi"}
    karimasu = {"app.kubernetes.io/managed-by": "karimasu"}
    pods = [
        _pod("daemon", containers=[_container({"cpu": "100m", "memory": "100Mi"})]),
        _pod("nb", namespace="research", containers=[_container(gpu, gpu)]),
        _pod("job", namespace="jobs", labels=karimasu, containers=[_container(gpu, gpu)]),
        # Karimasu's label in another namespace, or no label in the jobs namespace: foreign
        _pod("copycat", namespace="other", labels=karimasu, containers=[_container(gpu, gpu)]),
        _pod("stray", namespace="jobs", containers=[_container({"cpu": "1"})]),
        _pod("done", phase="Succeeded", containers=[_container({"cpu": "8"})]),
        _pod("failed", phase="Failed", containers=[_container({"cpu": "8"})]),
        _pod("pending", node=None, containers=[_container({"cpu": "8"})]),
        _pod("elsewhere", node="n2", containers=[_container({"cpu": "1m"})]),
    ]
    usage = foreign_usage(pods, "jobs")
    n1 = usage["n1"]
    assert (n1.gpus, n1.cpu_millis, n1.memory_mb) == (2, 100 + 500 + 500 + 1000, 100 + 1 + 1)
    assert n1.pods == ("jobs/stray", "kube-system/daemon", "other/copycat", "research/nb")
    assert (n1.daemon_cpu_millis, n1.daemon_memory_mb) == (0, 0)  # no owner: not a daemon
    assert (usage["n2"].cpu_millis, usage["n2"].pods) == (1, ("kube-system/elsewhere",))


def test_daemonset_and_static_pods_are_there_for_good():
    from scheduler.cluster.mapping import foreign_usage

    daemon = _pod("proxy", containers=[_container({"cpu": "100m", "memory": "128Mi"})])
    daemon["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "kube-proxy"}]
    static = _pod("etcd-n1", containers=[_container({"cpu": "1", "memory": "1Gi"})])
    static["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    passing = _pod("batch", namespace="data", containers=[_container({"cpu": "4"})])
    [n1] = foreign_usage([daemon, static, passing], "jobs").values()
    assert (n1.cpu_millis, n1.daemon_cpu_millis) == (5100, 1100)
    assert n1.daemon_memory_mb == 1024 + 128


# --- multi-node jobs (gangs) -----------------------------------------------------------------


def test_a_single_node_job_is_no_indexed_job_and_has_no_rendezvous_env():
    body = job_manifest(make_spec(), namespace="karimasu-jobs")
    assert "completionMode" not in body["spec"]
    pod_spec = body["spec"]["template"]["spec"]
    assert "subdomain" not in pod_spec and "podAntiAffinity" not in pod_spec["affinity"]
    names = {e["name"] for e in pod_spec["containers"][0]["env"]}
    assert not names & {"MASTER_ADDR", "WORLD_SIZE", "NODE_RANK"}


def test_a_gangs_env_wins_over_the_users_and_rdma_is_requested_per_pod():
    spec = make_spec(
        nodes=2,
        node_names=("tesla-02", "tesla-05"),
        env={"MASTER_ADDR": "evil.example.com", "WORLD_SIZE": "1", "SEED": "1"},
        extended={"rdma/ib": 1},
        gpus=0,
    )
    body = job_manifest(spec, namespace="karimasu-jobs")
    pod_spec = body["spec"]["template"]["spec"]
    env = pod_spec["containers"][0]["env"]
    named = {e["name"]: e.get("value") for e in env}
    assert [e["name"] for e in env].count("MASTER_ADDR") == 1
    assert named["MASTER_ADDR"] == "karimasu-job-7-a2-0.karimasu-job-7-a2"
    assert (named["WORLD_SIZE"], named["NPROC_PER_NODE"], named["SEED"]) == ("2", "1", "1")
    resources = pod_spec["containers"][0]["resources"]
    assert resources["requests"]["rdma/ib"] == resources["limits"]["rdma/ib"] == "1"
    term = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [
        "tesla-02",
        "tesla-05",
    ]
    rules = body["spec"]["podFailurePolicy"]["rules"]
    assert {r["action"] for r in rules} == {"FailJob"}


def test_node_info_lists_extended_resources():
    node = {
        "metadata": {"name": "ib-01", "labels": {}},
        "status": {
            "allocatable": {"cpu": "8", "memory": "1Gi", "rdma/ib": "4", "nvidia.com/gpu": "8"},
            "capacity": {},
        },
    }
    assert node_info(node).extended == {"rdma/ib": 4}


def _gang_job(conditions=()):
    body = job(conditions)
    body["spec"] = {"completionMode": "Indexed", "completions": 3}
    return body


def _rank(rank, phase="Running", node="n", **kwargs):
    p = pod(phase, node=node, **kwargs)
    p["metadata"] = {
        **p["metadata"],
        "annotations": {"batch.kubernetes.io/job-completion-index": str(rank)},
    }
    return p


RUNNING_STATE = {"running": {"startedAt": "2026-11-23T10:01:00Z"}}


def test_a_gang_runs_only_when_every_rank_runs():
    ranks = [_rank(0, node="a"), _rank(1, "Pending", node="b", waiting="ContainerCreating")]
    ranks.append(_rank(2, "Pending", node="c", waiting="ContainerCreating"))
    state = attempt_state(_gang_job(), ranks)
    assert (state.phase, state.reason, state.node_name) == (cluster.PENDING, "starting", "a")
    state = attempt_state(_gang_job(), [*ranks[:1], _rank(1, node="b"), _rank(2, node="c")])
    assert state.phase == cluster.RUNNING
    assert state.pods == ((0, "a"), (1, "b"), (2, "c"))


def test_a_gang_with_a_failed_rank_is_failed_and_one_missing_a_rank_is_incomplete():
    failed = _rank(1, "Failed", terminated={"exitCode": 3})
    state = attempt_state(_gang_job(), [_rank(0), failed, _rank(2)])
    assert state.phase == cluster.FAILED
    # Not created yet, or gone: reconcile decides (a gang it saw running is broken).
    state = attempt_state(_gang_job(), [_rank(0), _rank(2)])
    assert (state.phase, state.reason) == (cluster.PENDING, "gang_incomplete")


def test_the_mapping_and_job_model_docstring_examples_hold():
    import doctest

    from scheduler.cluster import mapping
    from scheduler.models import jobs

    for module in (mapping, jobs):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
