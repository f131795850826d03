"""The Kustomize manifests build and every object is valid for the pinned Kubernetes version.

Schemas come from PyPI's kubernetes-validate (no network); the build uses `kubectl
kustomize` from the machine image. Both the base and the demo overlay are checked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.33.0"
KUSTOMIZATIONS = ["k8s/base", "k8s/overlays/demo"]


def build(kustomization: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to build k8s/"
    result = subprocess.run(
        [kubectl, "kustomize", kustomization],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_validates_against_the_kubernetes_schema(kustomization):
    objects = build(kustomization)
    assert len(objects) > 10
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kustomization}: {name}: {exc.message} at {list(exc.path)}")


def test_every_manifest_file_is_part_of_its_kustomization():
    for folder in KUSTOMIZATIONS:
        kustomization = yaml.safe_load((REPO / folder / "kustomization.yaml").read_text())
        listed = set(kustomization["resources"])
        files = {p.name for p in (REPO / folder).glob("*.yaml")} - {"kustomization.yaml"}
        assert files <= listed, f"{folder}: not in kustomization.yaml: {files - listed}"


def _pod_specs(objects: list[dict]):
    for obj in objects:
        if obj["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            yield obj, obj["spec"]["template"]["spec"]


def test_karimasu_pods_meet_the_restricted_pod_security_profile():
    objects = [o for o in build("k8s/base")]
    pods = list(_pod_specs(objects))
    assert {o["metadata"]["name"] for o, _ in pods} >= {
        "karimasu-web",
        "karimasu-worker",
        "karimasu-beat",
        "karimasu-migrate",
    }
    for obj, spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True, obj["metadata"]["name"]
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert not spec.get("hostNetwork")
        assert all("hostPath" not in v for v in spec.get("volumes", []))
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]


def test_exactly_one_beat_even_during_a_rollout():
    beat = next(o for o in build("k8s/base") if o["metadata"]["name"] == "karimasu-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_portal_may_manage_jobs_only_in_the_jobs_namespace():
    objects = build("k8s/base")
    role = next(o for o in objects if o["kind"] == "Role")
    assert role["metadata"]["namespace"] == "karimasu-jobs"
    cluster_rules = next(o for o in objects if o["kind"] == "ClusterRole")["rules"]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in cluster_rules)
    assert {res for r in cluster_rules for res in r["resources"]} == {"nodes"}
