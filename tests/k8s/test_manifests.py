"""The Kustomize manifests build, every object is valid Kubernetes, and the rendered overlays
have the properties a day-0 deployment needs (issue #14): no secret in the applied
resources, default-deny networking in every namespace, one ServiceAccount per role, a shared
results volume, migrations before the rollout, pinned images, drainable budgets.

Everything is rendered by `scripts/k8s.py render` (the same command `make k8s-policy` feeds to
the policy scanner), on a copy of k8s/ with throwaway random secrets. Schemas come from
PyPI's kubernetes-validate (no network), every release it ships (1.25 to 1.37). It has no
Gateway API schemas: HTTPRoute is checked by shape here instead.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RENDERED = ["base", "production", "demo"]
# Every Kubernetes minor that kubernetes-validate ships schemas for (1.25 to 1.37 today).
KUBERNETES_VERSIONS = sorted(
    set(kubernetes_validate.utils.all_versions()), key=lambda v: tuple(map(int, v.split(".")))
)
NOT_IN_CORE_SCHEMAS = {"HTTPRoute"}
NAMESPACES = {"karimasu", "karimasu-jobs", "karimasu-agents"}
PLACEHOLDER_MARKERS = ("replace-me", "change-me", "changeme", "example")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("k8s")
    result = subprocess.run(
        [sys.executable, "scripts/k8s.py", "render", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {
        name: [doc for doc in yaml.safe_load_all((out / f"{name}.yaml").read_text()) if doc]
        for name in RENDERED
    }


def _find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def _workloads(objects: list[dict]):
    for obj in objects:
        if obj["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            yield obj, obj["spec"]["template"]["spec"]


def test_schemas_cover_the_supported_kubernetes_versions():
    assert {"1.25.0", "1.37.0"} <= set(KUBERNETES_VERSIONS)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", RENDERED)
def test_every_object_validates_against_the_kubernetes_schema(rendered, name, version):
    objects = rendered[name]
    assert len(objects) > 30
    for obj in objects:
        if obj["kind"] in NOT_IN_CORE_SCHEMAS:
            continue
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} @ {version}: {label}: {exc.message} at {list(exc.path)}")


def test_the_httproute_has_the_gateway_api_shape(rendered):
    """No offline schema for gateway.networking.k8s.io: its shape, checked by hand."""
    route = _find(rendered["production"], "HTTPRoute", "karimasu")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["namespace"] == "karimasu"
    spec = route["spec"]
    assert set(spec) <= {"parentRefs", "hostnames", "rules"}
    assert spec["parentRefs"] and all("name" in ref for ref in spec["parentRefs"])
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    service = _find(rendered["production"], "Service", "karimasu-web")
    ports = {p["port"] for p in service["spec"]["ports"]}
    assert rule["backendRefs"] == [{"name": "karimasu-web", "port": 80}] and 80 in ports
    assert not [o for o in rendered["production"] if o["kind"] == "Ingress"]
    # The demo takes the Ingress alternative instead.
    assert _find(rendered["demo"], "Ingress", "karimasu")
    assert not [o for o in rendered["demo"] if o["kind"] == "HTTPRoute"]


def test_every_manifest_file_is_part_of_its_kustomization():
    folders = ["k8s/base", "k8s/overlays/demo", "k8s/overlays/production"]
    for folder in [*folders, "k8s/components/ingress", "k8s/components/gateway-api"]:
        folder_path = REPO / folder
        kustomization = yaml.safe_load((folder_path / "kustomization.yaml").read_text())
        listed = set(kustomization.get("resources", []))
        files = {p.name for p in folder_path.glob("*.yaml")} - {"kustomization.yaml"}
        assert files <= listed, f"{folder}: not in kustomization.yaml: {files - listed}"


# --- secrets ------------------------------------------------------------------------------


def test_no_committed_manifest_is_a_secret():
    for path in (REPO / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (doc and doc.get("kind") == "Secret"), f"{path} holds a Secret"


def test_the_base_applies_no_secret_and_overlays_generate_one_from_a_local_file(rendered):
    assert not [o for o in rendered["base"] if o["kind"] == "Secret"]
    for overlay in ("production", "demo"):
        kustomization = yaml.safe_load(
            (REPO / f"k8s/overlays/{overlay}/kustomization.yaml").read_text()
        )
        (generator,) = kustomization["secretGenerator"]
        assert generator["envs"] == ["secrets.env"]
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", f"k8s/overlays/{overlay}/secrets.env"],
            cwd=REPO,
            check=False,
        )
        assert ignored.returncode == 0, f"k8s/overlays/{overlay}/secrets.env is not git-ignored"


@pytest.mark.parametrize("name", ["production", "demo"])
def test_rendered_secrets_hold_no_placeholder(rendered, name):
    (secret,) = [o for o in rendered[name] if o["kind"] == "Secret"]
    # The generator's hash suffix; every reference follows it.
    assert secret["metadata"]["name"].startswith("karimasu-secrets-")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert {"secret-key", "database-url", "broker-url", "cache-url"} <= set(values)
    for key, value in values.items():
        assert value, key
        assert not any(m in value.lower() for m in PLACEHOLDER_MARKERS), f"{key}: {value}"
    # The broker (and cache) authenticate: a password in every Redis URL.
    from urllib.parse import urlsplit

    for key in ("broker-url", "cache-url", "database-url"):
        assert len(urlsplit(values[key]).password or "") >= 16, key
    for obj, spec in _workloads(rendered[name]):
        names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        assert names <= {secret["metadata"]["name"]}, obj["metadata"]["name"]


def test_the_example_secrets_file_is_refused_by_the_settings():
    """Whoever applies secrets.env.example unchanged gets a portal that will not start."""
    from portal import settings

    example = (REPO / "k8s/overlays/production/secrets.env.example").read_text()
    values = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    assert values["secret-key"] in settings.KNOWN_PLACEHOLDER_SECRET_KEYS
    for key in ("database-url", "broker-url", "cache-url"):
        assert settings._placeholder_password(values[key]), key


def test_demo_secrets_are_random_and_wired_to_the_demo_services():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import k8s as helper
    finally:
        sys.path.pop(0)
    first, second = helper.demo_secrets(), helper.demo_secrets()
    assert first != second
    values = dict(line.split("=", 1) for line in first.splitlines() if line)
    assert f":{values['postgres-password']}@postgres.karimasu.svc:5432/" in values["database-url"]
    assert f":{values['redis-password']}@redis.karimasu.svc:6379/0" in values["broker-url"]
    assert len(values["secret-key"]) >= 50


# --- results volume, migrations, images --------------------------------------------------


@pytest.mark.parametrize("name", RENDERED)
def test_web_worker_and_watch_share_one_results_volume_at_the_same_path(rendered, name):
    """Query results (worker writes, web serves) and archived job logs (reconcile in the
    worker and the watch writes, web serves) live on one volume."""
    objects = rendered[name]
    config = _find(objects, "ConfigMap", "karimasu-config")["data"]
    results_dir = Path(config["QUERYGATE_RESULTS_DIR"])
    claim = _find(objects, "PersistentVolumeClaim", "karimasu-results")
    if name != "demo":  # the demo runs on one node, where ReadWriteOnce serves both
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for deployment in ("karimasu-web", "karimasu-worker", "karimasu-watch"):
        spec = _find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
        volume = next(v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v)
        claim_names = [
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claim_names == ["karimasu-results"], deployment
        (container,) = spec["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume]
        assert not mount.get("readOnly")
        assert results_dir.is_relative_to(mount["mountPath"]), (deployment, mount)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _image_tag(objects: list[dict]) -> str:
    (web,) = [c for _, s in _workloads(objects) for c in s["containers"] if c["name"] == "web"]
    return web["image"].rsplit(":", 1)[1]


@pytest.mark.parametrize("name", RENDERED)
def test_images_are_pinned_by_version(rendered, name):
    for obj, spec in _workloads(rendered[name]):
        for container in spec.get("initContainers", []) + spec["containers"]:
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, image
            tag = image.rsplit(":", 1)[1]
            assert tag not in {"latest", "stable", "main"}, (obj["metadata"]["name"], image)
            assert any(ch.isdigit() for ch in tag), image
    tag = _image_tag(rendered[name])
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{tag}"' in pyproject, "the base image tag is the project's version"


@pytest.mark.parametrize("name", RENDERED)
def test_migrations_run_first_in_a_job_named_per_release(rendered, name):
    objects = rendered[name]
    (job,) = [o for o in objects if o["kind"] == "Job"]
    assert job["metadata"]["name"] == f"karimasu-migrate-{_image_tag(objects)}"
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["command"][-2:] == ["migrate", "--noinput"]
    for deployment in ("karimasu-web", "karimasu-worker", "karimasu-watch"):
        spec = _find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
        (wait,) = spec["initContainers"]
        script = " ".join(wait["command"])
        assert "until python manage.py migrate --check" in script, deployment
        assert wait["image"] == spec["containers"][0]["image"], deployment


def test_a_watch_deployment_runs_cluster_watch(rendered):
    watch = _find(rendered["base"], "Deployment", "karimasu-watch")
    assert watch["spec"]["replicas"] == 1
    (container,) = watch["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "manage.py", "cluster", "watch"]


def test_exactly_one_beat_even_during_a_rollout(rendered):
    beat = _find(rendered["base"], "Deployment", "karimasu-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_web_readiness_is_readyz_with_an_allowed_host(rendered):
    objects = rendered["base"]
    (web,) = _find(objects, "Deployment", "karimasu-web")["spec"]["template"]["spec"]["containers"]
    allowed = _find(objects, "ConfigMap", "karimasu-config")["data"]["ALLOWED_HOSTS"].split(",")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = web[probe]["httpGet"]
        assert get["path"] == path
        (host,) = [h["value"] for h in get["httpHeaders"] if h["name"] == "Host"]
        assert host in allowed


# --- pods ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RENDERED)
def test_pods_meet_the_restricted_pod_security_profile(rendered, name):
    pods = list(_workloads(rendered[name]))
    assert {o["metadata"]["name"] for o, _ in pods} >= {
        "karimasu-web",
        "karimasu-worker",
        "karimasu-beat",
        "karimasu-watch",
        "karimasu-node-agent",
    }
    for obj, spec in pods:
        label = obj["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, label
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert not spec.get("hostNetwork")
        host_paths = [v for v in spec.get("volumes", []) if "hostPath" in v]
        if obj["kind"] == "DaemonSet":  # the node agent: its node's token file, nothing else
            assert spec["hostPID"] is True
            assert [v["hostPath"] for v in host_paths] == [
                {"path": "/etc/karimasu/node-token", "type": "File"}
            ]
        else:
            assert not host_paths and not spec.get("hostPID"), label
        for container in spec.get("initContainers", []) + spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, label
            assert ctx["capabilities"]["drop"] == ["ALL"], label
            assert ctx["readOnlyRootFilesystem"] is True, label
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), label


@pytest.mark.parametrize("name", RENDERED)
def test_every_disruption_budget_lets_a_drain_proceed(rendered, name):
    objects = rendered[name]
    workloads = [o for o in objects if o["kind"] in {"Deployment", "StatefulSet"}]
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        (target,) = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        replicas = target["spec"].get("replicas", 1)
        if "minAvailable" in pdb["spec"]:
            allowed = replicas - pdb["spec"]["minAvailable"]
        else:
            allowed = min(replicas, pdb["spec"]["maxUnavailable"])
        assert allowed >= 1, f"{name}: {pdb['metadata']['name']} blocks a drain"


def test_the_demo_brings_its_own_database_and_broker(rendered):
    objects = rendered["demo"]
    assert _find(objects, "StatefulSet", "postgres") and _find(objects, "Deployment", "redis")
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert "@postgres.karimasu.svc:5432/" in values["database-url"]
    assert values["broker-url"].startswith(f"redis://:{values['redis-password']}@redis.karimasu")
    text = yaml.safe_dump_all(objects)
    assert "example.internal" not in text
    (redis,) = _find(objects, "Deployment", "redis")["spec"]["template"]["spec"]["containers"]
    assert "--requirepass" in " ".join(redis["command"])
    assert all("valueFrom" not in e for e in redis.get("env", []))


# --- service accounts ---------------------------------------------------------------------


def _rules_for(objects: list[dict], account: str) -> list[tuple[str, str, dict]]:
    """(binding kind, namespace, rule) for every rule bound to the ServiceAccount."""
    found = []
    for binding in (o for o in objects if o["kind"] in {"RoleBinding", "ClusterRoleBinding"}):
        if not any(s["name"] == account for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        role_kind = "Role" if ref["kind"] == "Role" else "ClusterRole"
        role = _find(objects, role_kind, ref["name"])
        namespace = binding["metadata"].get("namespace", "*")
        found += [(binding["kind"], namespace, rule) for rule in role["rules"]]
    return found


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


def test_each_role_has_its_own_service_account_with_least_privilege(rendered):
    objects = rendered["base"]
    accounts = {
        spec["serviceAccountName"]: spec for _, spec in _workloads(objects) if spec is not None
    }
    owners = {
        spec["serviceAccountName"]: obj["metadata"]["name"] for obj, spec in _workloads(objects)
    }
    assert owners == {
        "karimasu-web": "karimasu-web",
        "karimasu-worker": "karimasu-worker",
        "karimasu-beat": "karimasu-beat",
        "karimasu-watch": "karimasu-watch",
        "karimasu-migrate": _find(objects, "Job", owners["karimasu-migrate"])["metadata"]["name"],
        "karimasu-node-agent": "karimasu-node-agent",
    }
    # Web: reads only, but for the pod proxy into session workspaces (the API server
    # authorises a forwarded POST/PUT/PATCH/DELETE as that verb on pods/proxy), and that
    # only in the jobs namespace (docs/sessions.md).
    web_rules = _rules_for(objects, "karimasu-web")
    assert web_rules
    for kind, namespace, rule in web_rules:
        if set(rule["verbs"]) & WRITE_VERBS:
            assert rule["resources"] == ["pods/proxy"], rule
            assert (kind, namespace) == ("RoleBinding", "karimasu-jobs"), rule
    # Worker and watch: write Jobs (and stop their pods), and only in the jobs namespace.
    for account in ("karimasu-worker", "karimasu-watch"):
        rules = _rules_for(objects, account)
        writes = [(kind, ns, r) for kind, ns, r in rules if set(r["verbs"]) & WRITE_VERBS]
        assert writes, account
        for kind, namespace, rule in writes:
            assert (kind, namespace) == ("RoleBinding", "karimasu-jobs"), account
            assert rule["resources"] in (
                ["jobs"],
                ["pods"],
                ["resourceclaims"],
                ["services"],
            ), account
            if rule["resources"] == ["pods"]:
                assert set(rule["verbs"]) == {"patch", "delete"}, account
            if rule["resources"] == ["services"]:  # a multi-node job's headless Service
                assert set(rule["verbs"]) == {"get", "create", "delete"}, account
            if rule["resources"] == ["resourceclaims"]:  # DRA: the exact GPUs booked
                assert rule["apiGroups"] == ["resource.k8s.io"], account
                assert set(rule["verbs"]) == {"get", "list", "create", "delete"}, account
        cluster = [r for kind, _, r in rules if kind == "ClusterRoleBinding"]
        # cluster-wide: read nodes, list/watch pods (what others hold on each node), read the
        # DRA driver's DeviceClasses and ResourceSlices (which nodes offer exact devices)
        assert {res for r in cluster for res in r["resources"]} == {
            "nodes",
            "pods",
            "deviceclasses",
            "resourceslices",
        }
        for rule in cluster:
            if "pods" in rule["resources"]:
                assert rule["resources"] == ["pods"] and set(rule["verbs"]) == {"list", "watch"}
            if "resourceslices" in rule["resources"]:
                assert set(rule["verbs"]) == {"get", "list"}
    # Beat, migrate and the node agent: no API access, no token.
    for account in ("karimasu-beat", "karimasu-migrate", "karimasu-node-agent"):
        assert _rules_for(objects, account) == [], account
        assert accounts[account]["automountServiceAccountToken"] is False, account
    assert not [
        o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "karimasu"
    ]


# --- network ------------------------------------------------------------------------------


def _selects(policy: dict, labels: dict) -> bool:
    selector = policy["spec"]["podSelector"]
    return selector.get("matchLabels", {}).items() <= labels.items() and not selector.get(
        "matchExpressions"
    )


@pytest.mark.parametrize("name", RENDERED)
def test_every_namespace_denies_by_default_and_every_pod_is_selected(rendered, name):
    objects = rendered[name]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    assert namespaces == NAMESPACES
    for namespace in namespaces:
        deny = [
            p
            for p in policies
            if p["metadata"]["namespace"] == namespace
            and p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert deny, f"{name}: no default-deny NetworkPolicy in {namespace}"
    for obj, _ in _workloads(objects):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        namespace = obj["metadata"]["namespace"]
        assert any(
            p["metadata"]["namespace"] == namespace and _selects(p, labels) for p in policies
        ), obj["metadata"]["name"]


PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


def test_jobs_reach_only_dns_and_public_https(rendered):
    policies = [
        o
        for o in rendered["base"]
        if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == "karimasu-jobs"
    ]
    assert not any(p["spec"].get("ingress") for p in policies), "nothing may reach a job"
    egress = [rule for p in policies for rule in p["spec"].get("egress", [])]
    for rule in egress:
        ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
        if ports <= {("UDP", 53), ("TCP", 53)}:
            (peer,) = rule["to"]
            assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
            continue
        assert ports == {("TCP", 443)}
        for peer in rule["to"]:  # never the cluster's own networks (Redis, PostgreSQL...)
            assert set(PRIVATE) <= set(peer["ipBlock"]["except"])
            assert "169.254.0.0/16" in peer["ipBlock"]["except"]
    assert all(rule.get("to") for rule in egress), "an egress rule without peers allows all"


def test_demo_database_and_broker_take_only_karimasu_pods(rendered):
    objects = rendered["demo"]
    for app, port in (("postgres", 5432), ("redis", 6379)):
        labels = {"app.kubernetes.io/name": app}
        policies = [
            p
            for p in objects
            if p["kind"] == "NetworkPolicy"
            and "Ingress" in p["spec"]["policyTypes"]
            and _selects(p, labels)
        ]
        peers = [
            peer for p in policies for rule in p["spec"].get("ingress", []) for peer in rule["from"]
        ]
        assert peers == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "karimasu"}}}]
        ports = [
            port_["port"]
            for p in policies
            for r in p["spec"].get("ingress", [])
            for port_ in r["ports"]
        ]
        assert ports == [port]


# --- node agents -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["base", "production"])
def test_agents_post_over_https_to_an_allowed_host(rendered, name):
    from urllib.parse import urlsplit

    objects = rendered[name]
    url = _find(objects, "ConfigMap", "karimasu-agent-config")["data"]["KARIMASU_PORTAL_URL"]
    assert url.startswith("https://")
    allowed = _find(objects, "ConfigMap", "karimasu-config")["data"]["ALLOWED_HOSTS"].split(",")
    assert urlsplit(url).hostname in allowed


def test_each_agent_mounts_only_its_nodes_token(rendered):
    objects = rendered["base"]
    agent = _find(objects, "DaemonSet", "karimasu-node-agent")
    spec = agent["spec"]["template"]["spec"]
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert all("secret" not in v and "projected" not in v for v in spec["volumes"])
    (container,) = spec["containers"]
    (token_arg,) = [a for a in container["args"] if a.startswith("--token-file=")]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "node-token"]
    assert token_arg == f"--token-file={mount['mountPath']}" and mount["readOnly"] is True


def test_the_demo_agents_use_an_allowed_host_without_a_redirect(rendered):
    from urllib.parse import urlsplit

    objects = rendered["demo"]
    agent_config = _find(objects, "ConfigMap", "karimasu-agent-config")["data"]
    config = _find(objects, "ConfigMap", "karimasu-config")["data"]
    assert urlsplit(agent_config["KARIMASU_PORTAL_URL"]).hostname in config["ALLOWED_HOSTS"].split(
        ","
    )
    assert config["SECURE_SSL_REDIRECT"] == "false"


# --- the rendered configuration starts the portal and the agent -------------------------


def _pod_environment(objects: list[dict], deployment: str, secret_dir: Path) -> dict[str, str]:
    """The environment the container would get: ConfigMap values, then its env entries,
    with the Secret's keys written as files where its volume is mounted."""
    spec = _find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(_find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "secrets"]
    for key, value in secret["data"].items():
        (secret_dir / key).write_bytes(base64.b64decode(value))
    for item in container.get("env", []):
        env[item["name"]] = item["value"].replace(mount["mountPath"], str(secret_dir))
    return env


@pytest.mark.parametrize("name", ["production", "demo"])
def test_the_rendered_configuration_passes_the_settings_and_deploy_checks(rendered, name, tmp_path):
    """The web container's environment, as rendered, loads the settings (no placeholder, a
    parseable value for every variable) and passes `check --deploy` in production."""
    import os

    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    env = _pod_environment(rendered[name], "karimasu-web", secret_dir)
    env["KARIMASU_VAR_DIR"] = str(tmp_path / "var")
    env["STATIC_ROOT"] = str(tmp_path / "static")
    env["QUERYGATE_RESULTS_DIR"] = str(tmp_path / "results")
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}}
    args = ["check", "--deploy", "--fail-level", "WARNING"] if name == "production" else ["check"]
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**keep, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", RENDERED)
def test_job_pods_name_a_priority_class_the_manifests_create(rendered, name):
    objects = rendered[name]
    config = _find(objects, "ConfigMap", "karimasu-config")
    wanted = config["data"]["KARIMASU_POD_PRIORITY_CLASS"]
    priority = _find(objects, "PriorityClass", wanted)
    assert priority["preemptionPolicy"] == "Never" and priority["globalDefault"] is False
