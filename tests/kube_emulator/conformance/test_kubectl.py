"""kubectl itself against the cluster: the commands people type, without --validate=false.

Each probe asserts what kubectl prints or exits with on a real cluster.
"""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from .conftest import Cluster, job_manifest, kubectl_minor


def _yaml(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _pod_manifest(name: str, **labels: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"probe": "conformance", **labels}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c", "echo conformance-probe; sleep 3600"],
                }
            ],
        },
    }


def test_api_resources_version_and_explain(cluster: Cluster) -> None:
    resources = _ok(cluster.kubectl("api-resources"))
    rows = {line.split()[0]: line.split() for line in resources.splitlines()[1:]}
    assert rows["pods"][1] == "po"
    assert rows["nodes"][1] == "no"
    assert rows["jobs"][1:3] == ["batch/v1", "true"]
    assert "Server Version:" in _ok(cluster.kubectl("version"))
    explained = _ok(cluster.kubectl("explain", "job.spec.template"))
    # kubectl before 1.27 explains from the protobuf OpenAPI v2 and aligns "KIND:" narrower
    assert re.search(r"^KIND:\s+Job$", explained, re.MULTILINE)
    assert "PodTemplateSpec" in explained
    fields = _ok(cluster.kubectl("explain", "pods.spec.containers.resources"))
    assert "limits" in fields and "requests" in fields


def test_apply_with_client_validation_then_unchanged_then_rejects_unknown_fields(
    cluster: Cluster,
) -> None:
    manifest = job_manifest("applied", suspend=True)
    assert "job.batch/applied created" in _ok(
        cluster.kubectl("apply", "-f", "-", stdin=_yaml(manifest))
    )
    assert "job.batch/applied unchanged" in _ok(
        cluster.kubectl("apply", "-f", "-", stdin=_yaml(manifest))
    )
    manifest["spec"]["bogus"] = 1
    refused = cluster.kubectl("apply", "-f", "-", stdin=_yaml(manifest))
    assert refused.returncode != 0
    if kubectl_minor() >= 25:  # --validate=strict: the server's fieldValidation=Strict answers
        assert 'unknown field "spec.bogus"' in refused.stderr
    else:  # before 1.25 kubectl itself validates against the protobuf OpenAPI v2 schemas
        assert 'unknown field "bogus" in io.k8s.api.batch.v1.JobSpec' in refused.stderr
    stored = json.loads(_ok(cluster.kubectl("get", "job", "applied", "-o", "json")))
    assert "bogus" not in stored["spec"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]


def test_diff_and_server_dry_run_change_nothing(cluster: Cluster) -> None:
    manifest = job_manifest("diffed", suspend=True)
    _ok(cluster.kubectl("create", "-f", "-", stdin=_yaml(manifest)))
    manifest["metadata"]["labels"]["tier"] = "gpu"
    diff = cluster.kubectl("diff", "-f", "-", stdin=_yaml(manifest))
    assert diff.returncode == 1, diff.stderr  # 1: differences found
    assert "+    tier: gpu" in diff.stdout
    labels = json.loads(_ok(cluster.kubectl("get", "job", "diffed", "-o", "json")))["metadata"][
        "labels"
    ]
    assert "tier" not in labels
    dry = _ok(cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=_yaml(manifest)))
    assert "(server dry run)" in dry
    fresh = job_manifest("never-made")
    assert "(server dry run)" in _ok(
        cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=_yaml(fresh))
    )
    missing = cluster.kubectl("get", "job", "never-made")
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    assert _ok(cluster.kubectl("get", "pods", "-l", "job-name=never-made", "-o", "name")) == ""


def test_server_side_apply_creates_then_updates(cluster: Cluster) -> None:
    manifest = job_manifest("ssa", suspend=True)
    out = _ok(cluster.kubectl("apply", "--server-side", "-f", "-", stdin=_yaml(manifest)))
    assert "job.batch/ssa serverside-applied" in out
    manifest["metadata"]["labels"]["tier"] = "gpu"
    _ok(cluster.kubectl("apply", "--server-side", "-f", "-", stdin=_yaml(manifest)))
    # kubectl 1.21 started hiding managedFields (and added the flag); 1.20 always shows them
    show = ["--show-managed-fields"] if kubectl_minor() >= 21 else []
    shown = cluster.kubectl("get", "job", "ssa", "-o", "json", *show)
    job = json.loads(_ok(shown))
    assert job["metadata"]["labels"]["tier"] == "gpu"
    managers = {m["manager"] for m in job["metadata"]["managedFields"]}
    assert "kubectl" in managers
    # a field the manager applied before and applies no more goes
    del manifest["metadata"]["labels"]["tier"]
    manifest["metadata"]["annotations"] = {"note": "kept"}
    _ok(cluster.kubectl("apply", "--server-side", "-f", "-", stdin=_yaml(manifest)))
    meta = json.loads(_ok(cluster.kubectl("get", "job", "ssa", "-o", "json")))["metadata"]
    assert "tier" not in meta["labels"] and meta["labels"]["probe"] == "conformance"
    assert meta["annotations"]["note"] == "kept"


def test_get_short_names_selectors_wide_and_watch(cluster: Cluster) -> None:
    _ok(cluster.kubectl("create", "-f", "-", stdin=_yaml(_pod_manifest("alpha", app="a"))))
    _ok(cluster.kubectl("create", "-f", "-", stdin=_yaml(_pod_manifest("beta", app="b"))))
    table = _ok(cluster.kubectl("get", "po", "-o", "wide"))
    header = table.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "NODE" in header and "IP" in header
    assert _ok(cluster.kubectl("get", "po", "-l", "app=a", "-o", "name")).split() == ["pod/alpha"]
    assert _ok(cluster.kubectl("get", "po", "-l", "app notin (a)", "-o", "name")).split() == [
        "pod/beta"
    ]
    as_yaml = yaml.safe_load(_ok(cluster.kubectl("get", "pod", "alpha", "-o", "yaml")))
    assert as_yaml["kind"] == "Pod" and as_yaml["metadata"]["labels"]["app"] == "a"
    nodes = _ok(cluster.kubectl("get", "no"))
    assert nodes.splitlines()[0].split()[:2] == ["NAME", "STATUS"]
    watched = cluster.kubectl("get", "po", "--watch", "--request-timeout=3s", timeout=30)
    assert "alpha" in watched.stdout and "beta" in watched.stdout


def test_describe_logs_label_annotate_and_delete_wait(cluster: Cluster) -> None:
    _ok(cluster.kubectl("create", "-f", "-", stdin=_yaml(job_manifest("described"))))

    def finished() -> bool:
        phase = cluster.kubectl(
            "get", "pods", "-l", "job-name=described", "-o", "jsonpath={.items[*].status.phase}"
        ).stdout
        return phase in ("Running", "Succeeded", "Failed")

    cluster.wait_for("the job's pod to start", finished)
    described = _ok(cluster.kubectl("describe", "job", "described"))
    assert "Name:" in described and "described" in described
    assert "SuccessfulCreate" in described  # the events, fetched by involvedObject fields
    pod_name = _ok(cluster.kubectl("get", "pods", "-l", "job-name=described", "-o", "name")).strip()
    pod_text = _ok(cluster.kubectl("describe", pod_name))
    assert "Containers:" in pod_text and "Events:" in pod_text
    assert _ok(cluster.kubectl("logs", "job/described")).strip() != ""
    assert "labeled" in _ok(cluster.kubectl("label", "job", "described", "team=ml"))
    # kubectl 1.27 printed "annotate" (kubernetes/kubectl#1462, fixed in 1.28)
    annotated = "annotate" if kubectl_minor() == 27 else "annotated"
    assert f"{pod_name} {annotated}\n" in _ok(cluster.kubectl("annotate", pod_name, "note=probe"))
    labels = _ok(cluster.kubectl("get", "job", "described", "-o", "jsonpath={.metadata.labels}"))
    assert json.loads(labels)["team"] == "ml"
    deleted = _ok(cluster.kubectl("delete", "job", "described", "--wait", "--timeout=60s"))
    assert 'job.batch "described" deleted' in deleted
    gone = cluster.kubectl("get", "job", "described")
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_node_commands_as_server_dry_runs(cluster: Cluster) -> None:
    node = _ok(cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"))
    cordoned = _ok(cluster.kubectl("cordon", node, "--dry-run=server"))
    assert "cordoned (server dry run)" in cordoned
    spec = json.loads(_ok(cluster.kubectl("get", "node", node, "-o", "jsonpath={.spec}")) or "{}")
    assert not spec.get("unschedulable")
    drained = _ok(
        cluster.kubectl("drain", node, "--dry-run=client", "--ignore-daemonsets", "--force")
    )
    assert "drained (dry run)" in drained
    described = _ok(cluster.kubectl("describe", "node", node))
    assert "Capacity:" in described and "Allocated resources:" in described


def test_generators_that_send_protobuf_and_auth_can_i(cluster: Cluster) -> None:
    # kubectl's typed generators write protobuf bodies (and accept a JSON answer)
    created = _ok(
        cluster.kubectl(
            "create", "job", "generated", "--image=busybox:1.36", "--", "echo", "conformance-probe"
        )
    )
    assert "job.batch/generated created" in created
    job = json.loads(_ok(cluster.kubectl("get", "job", "generated", "-o", "json")))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["command"]) == (
        "busybox:1.36",
        ["echo", "conformance-probe"],
    )
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert _ok(cluster.kubectl("auth", "can-i", "create", "jobs")).strip() == "yes"
    namespace = f"{cluster.namespace}-x"
    assert f"namespace/{namespace} created" in _ok(
        cluster.kubectl("create", "namespace", namespace)
    )
    _ok(cluster.kubectl("delete", "namespace", namespace, "--wait=false"))
