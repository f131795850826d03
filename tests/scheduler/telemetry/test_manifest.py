"""k8s/base/node-agent.yaml is valid Kubernetes and runs the agent as the docs say."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from nodeagent.agent import parse_args

MANIFEST = Path(__file__).resolve().parents[3] / "k8s" / "base" / "node-agent.yaml"


def objects() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]


def test_every_object_validates():
    for obj in objects():
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_daemonset_is_locked_down_except_host_pid_and_its_token_file():
    (ds,) = [o for o in objects() if o["kind"] == "DaemonSet"]
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True and not spec.get("hostNetwork")
    assert spec["securityContext"]["runAsNonRoot"] is True
    # One hostPath: this node's token file, read-only (k8s/README.md: node tokens).
    host_paths = [v["hostPath"] for v in spec["volumes"] if "hostPath" in v]
    assert host_paths == [{"path": "/etc/karimasu/node-token", "type": "File"}]
    (container,) = spec["containers"]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert "memory" in container["resources"]["limits"]
    # Its arguments parse with the agent's own parser (env references filled in).
    args = [
        a.replace("$(KARIMASU_PORTAL_URL)", "https://p").replace("$(NODE_NAME)", "n1")
        for a in container["args"]
    ]
    parsed = parse_args([a for a in args if not a.startswith("--token-file")] + ["--token", "t"])
    assert (parsed.source, parsed.interval, parsed.metrics_port) == ("nvml", 10.0, 9400)
