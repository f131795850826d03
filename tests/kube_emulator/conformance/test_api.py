"""API-surface probes: discovery, OpenAPI, dry runs, field validation, deletion, pagination.

Each holds on a real API server (run them with KARIMASU_CONFORMANCE_KUBECONFIG, see conftest).
"""

from __future__ import annotations

import json

from .conftest import Cluster, job_manifest


def _jobs(cluster: Cluster, suffix: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{cluster.namespace}/jobs{suffix}"


def test_discovery_names_short_names_verbs_and_categories(cluster: Cluster) -> None:
    core = {x["name"]: x for x in cluster.request("GET", "/api/v1").json["resources"]}
    assert [core[n].get("shortNames") for n in ("pods", "nodes", "namespaces", "events")] == [
        ["po"],
        ["no"],
        ["ns"],
        ["ev"],
    ]
    pods = core["pods"]
    assert (pods["singularName"], pods["kind"], pods["namespaced"]) == ("pod", "Pod", True)
    assert {"create", "delete", "get", "list", "patch", "update", "watch"} <= set(pods["verbs"])
    assert "all" in pods["categories"]
    assert core["nodes"]["namespaced"] is False
    assert {"pods/log", "pods/status"} <= set(core)
    batch = {x["name"]: x for x in cluster.request("GET", "/apis/batch/v1").json["resources"]}
    assert (batch["jobs"]["kind"], batch["jobs"]["singularName"]) == ("Job", "job")
    assert "all" in batch["jobs"]["categories"]
    groups = {g["name"] for g in cluster.request("GET", "/apis").json["groups"]}
    assert "batch" in groups
    assert cluster.request("GET", "/apis/batch").json["preferredVersion"]["version"] == "v1"


def test_openapi_v3_has_each_group_version_with_kinds_and_write_parameters(
    cluster: Cluster,
) -> None:
    index = cluster.request("GET", "/openapi/v3").json["paths"]
    assert {"api/v1", "apis/batch/v1"} <= set(index)
    url = index["apis/batch/v1"]["serverRelativeURL"]
    document = cluster.request("GET", url).json
    job = document["components"]["schemas"]["io.k8s.api.batch.v1.Job"]
    assert job["x-kubernetes-group-version-kind"] == [
        {"group": "batch", "kind": "Job", "version": "v1"}
    ]
    spec = document["components"]["schemas"]["io.k8s.api.batch.v1.JobSpec"]
    assert "template" in spec["required"]
    patch = document["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"]
    params = {p["name"] for p in patch["parameters"]}
    assert {"dryRun", "fieldManager", "fieldValidation"} <= params
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Job"


def test_openapi_v2_answers_json(cluster: Cluster) -> None:
    answer = cluster.request("GET", "/openapi/v2")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    definitions = answer.json["definitions"]
    assert "io.k8s.api.core.v1.PodSpec" in definitions
    assert definitions["io.k8s.api.core.v1.Container"]["required"] == ["name"]


def test_dry_run_create_patch_and_delete_store_nothing(cluster: Cluster) -> None:
    created = cluster.request("POST", _jobs(cluster, "?dryRun=All"), job_manifest("dry"))
    assert created.status == 201
    assert created.json["metadata"]["name"] == "dry"
    assert created.json["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert cluster.request("GET", _jobs(cluster, "/dry")).status == 404

    assert cluster.request("POST", _jobs(cluster), job_manifest("real", suspend=True)).status == 201
    before = cluster.request("GET", _jobs(cluster, "/real")).json
    patch = {"metadata": {"labels": {"dry": "yes"}}}
    patched = cluster.request(
        "PATCH",
        _jobs(cluster, "/real?dryRun=All"),
        patch,
        content_type="application/merge-patch+json",
    )
    assert patched.status == 200
    assert patched.json["metadata"]["labels"]["dry"] == "yes"
    after = cluster.request("GET", _jobs(cluster, "/real")).json
    assert after["metadata"]["labels"] == before["metadata"]["labels"]

    deleted = cluster.request("DELETE", _jobs(cluster, "/real?dryRun=All"))
    assert deleted.status == 200
    assert cluster.request("GET", _jobs(cluster, "/real")).status == 200
    assert cluster.request("POST", _jobs(cluster, "?dryRun=Some"), job_manifest("x")).status == 400


def test_strict_field_validation_rejects_unknown_and_duplicate_fields(cluster: Cluster) -> None:
    job = job_manifest("strict")
    job["spec"]["bogus"] = 1
    job["spec"]["template"]["spec"]["containers"][0]["colour"] = "blue"
    answer = cluster.request("POST", _jobs(cluster, "?fieldValidation=Strict"), job)
    assert answer.status == 400
    assert answer.json["reason"] == "BadRequest"
    message = answer.json["message"]
    assert "strict decoding error: " in message
    assert 'unknown field "spec.bogus"' in message
    assert 'unknown field "spec.template.spec.containers[0].colour"' in message

    text = json.dumps(job_manifest("twice")).replace(
        '"backoffLimit": 0', '"backoffLimit": 0, "backoffLimit": 1'
    )
    twice = cluster.request("POST", _jobs(cluster, "?fieldValidation=Strict"), raw=text.encode())
    assert twice.status == 400
    assert "duplicate field" in twice.json["message"]
    assert "backoffLimit" in twice.json["message"]
    assert cluster.request("GET", _jobs(cluster)).json["items"] == []


def test_warn_field_validation_stores_without_the_unknown_field(cluster: Cluster) -> None:
    job = job_manifest("warned", suspend=True)
    job["spec"]["bogus"] = 1
    answer = cluster.request("POST", _jobs(cluster, "?fieldValidation=Warn"), job)
    assert answer.status == 201
    assert any('unknown field \\"spec.bogus\\"' in w for w in answer.warnings), answer.warnings
    assert "bogus" not in cluster.request("GET", _jobs(cluster, "/warned")).json["spec"]
    ignored = job_manifest("ignored", suspend=True)
    ignored["spec"]["bogus"] = 1
    quiet = cluster.request("POST", _jobs(cluster, "?fieldValidation=Ignore"), ignored)
    assert (quiet.status, quiet.warnings) == (201, [])


def test_pod_template_metadata_is_validated_with_causes(cluster: Cluster) -> None:
    job = job_manifest("badtemplate")
    job["spec"]["template"]["metadata"]["labels"]["bad key!"] = "x"
    job["spec"]["template"]["metadata"]["annotations"] = {"ok": "x", "-bad/": "y"}
    answer = cluster.request("POST", _jobs(cluster), job)
    assert answer.status == 422
    assert answer.json["reason"] == "Invalid"
    fields = {c["field"] for c in answer.json["details"]["causes"]}
    assert {"spec.template.metadata.labels", "spec.template.metadata.annotations"} <= fields
    assert 'Job.batch "badtemplate" is invalid' in answer.json["message"]


def test_finalizers_hold_a_deleted_object_until_removed(cluster: Cluster) -> None:
    job = job_manifest("held", suspend=True)
    job["metadata"]["finalizers"] = ["karimasu.io/hold"]
    created = cluster.request("POST", _jobs(cluster), job).json
    start = created["metadata"]["resourceVersion"]
    # Background: without a policy, batch/v1 orphans, which adds the "orphan" finalizer
    deleted = cluster.request("DELETE", _jobs(cluster, "/held?propagationPolicy=Background"))
    assert deleted.status in (200, 202)
    still = cluster.request("GET", _jobs(cluster, "/held")).json
    assert still["metadata"]["deletionTimestamp"]
    assert still["metadata"]["finalizers"] == ["karimasu.io/hold"]
    released = cluster.request(
        "PATCH",
        _jobs(cluster, "/held"),
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert released.status == 200
    cluster.wait_for(
        "the job to go", lambda: cluster.request("GET", _jobs(cluster, "/held")).status == 404
    )
    stream = cluster.request(
        "GET",
        _jobs(
            cluster,
            f"?watch=true&resourceVersion={start}&timeoutSeconds=2"
            "&fieldSelector=metadata.name%3Dheld",
        ),
    )
    events = [json.loads(line) for line in stream.raw.decode().splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "DELETED", kinds
    marked = [e for e in events if e["object"]["metadata"].get("deletionTimestamp")]
    assert marked[0]["type"] == "MODIFIED", kinds  # first marked, then (later) gone


def test_delete_preconditions_conflict_when_stale(cluster: Cluster) -> None:
    created = cluster.request("POST", _jobs(cluster), job_manifest("guarded", suspend=True)).json
    meta = created["metadata"]
    wrong_uid = {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}
    answer = cluster.request("DELETE", _jobs(cluster, "/guarded"), wrong_uid)
    assert (answer.status, answer.json["reason"]) == (409, "Conflict")
    assert "Precondition failed: UID in precondition" in answer.json["message"]
    cluster.request(
        "PATCH",
        _jobs(cluster, "/guarded"),
        {"metadata": {"labels": {"moved": "on"}}},
        content_type="application/merge-patch+json",
    )
    stale = {"preconditions": {"resourceVersion": meta["resourceVersion"]}}
    answer = cluster.request("DELETE", _jobs(cluster, "/guarded"), stale)
    assert answer.status == 409
    right = {"preconditions": {"uid": meta["uid"]}, "propagationPolicy": "Background"}
    assert cluster.request("DELETE", _jobs(cluster, "/guarded"), right).status == 200


def test_pages_read_one_snapshot_under_concurrent_creates_and_deletes(cluster: Cluster) -> None:
    names = [f"page-{i:02d}" for i in range(12)]
    for name in names:
        assert cluster.request("POST", _jobs(cluster), job_manifest(name, suspend=True)).status
    first = cluster.request("GET", _jobs(cluster, "?limit=5")).json
    assert len(first["items"]) == 5
    assert first["metadata"]["remainingItemCount"] == 7
    seen = [j["metadata"]["name"] for j in first["items"]]
    # Meanwhile: one not yet listed goes, one listed goes, a new one comes.
    for gone in ("page-07", "page-01"):
        cluster.request("DELETE", _jobs(cluster, f"/{gone}?propagationPolicy=Background"))
    cluster.request("POST", _jobs(cluster), job_manifest("page-06a", suspend=True))
    token = first["metadata"]["continue"]
    while token:
        page = cluster.request("GET", _jobs(cluster, f"?limit=5&continue={token}")).json
        seen += [j["metadata"]["name"] for j in page["items"]]
        token = page["metadata"].get("continue")
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert seen == names


def test_list_at_an_exact_older_version(cluster: Cluster) -> None:
    cluster.request("POST", _jobs(cluster), job_manifest("early", suspend=True))
    version = cluster.request("GET", _jobs(cluster)).json["metadata"]["resourceVersion"]
    cluster.request("POST", _jobs(cluster), job_manifest("late", suspend=True))
    then = cluster.request(
        "GET", _jobs(cluster, f"?resourceVersion={version}&resourceVersionMatch=Exact")
    ).json
    assert [j["metadata"]["name"] for j in then["items"]] == ["early"]
    assert then["metadata"]["resourceVersion"] == version
    bad = cluster.request("GET", _jobs(cluster, "?resourceVersionMatch=Exact"))
    assert bad.status == 400


def test_unknown_body_format_is_415_and_unservable_accept_is_406(cluster: Cluster) -> None:
    answer = cluster.request("POST", _jobs(cluster), raw=b"name: x", content_type="text/plain")
    assert answer.status == 415
    assert (answer.json["kind"], answer.json["reason"]) == ("Status", "UnsupportedMediaType")
    assert "application/json" in answer.json["message"]
    patch = cluster.request(
        "PATCH", _jobs(cluster, "/x"), raw=b"{}", content_type="application/xml"
    )
    assert patch.status == 415
    refused = cluster.request("GET", _jobs(cluster), accept="text/html")
    assert refused.status == 406
    assert refused.json["reason"] == "NotAcceptable"


def test_a_value_of_the_wrong_type_is_a_decoding_error(cluster: Cluster) -> None:
    job = job_manifest("typed")
    job["spec"]["backoffLimit"] = "three"
    answer = cluster.request("POST", _jobs(cluster), job)
    assert (answer.status, answer.json["reason"]) == (400, "BadRequest")
    assert (
        "cannot unmarshal string into Go struct field JobSpec.spec.backoffLimit"
        in (answer.json["message"])
    )
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typed"}}
    pod["spec"] = {"containers": "busybox"}
    path = f"/api/v1/namespaces/{cluster.namespace}/pods"
    answer = cluster.request("POST", path, pod)
    assert answer.status == 400
    assert "of type []v1.Container" in answer.json["message"]
    quantities = job_manifest("numbers", suspend=True)  # a number is a valid quantity
    quantities["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 1
    assert cluster.request("POST", _jobs(cluster), quantities).status == 201


def test_a_headless_service_as_a_multi_node_job_makes_it(cluster: Cluster) -> None:
    core = {x["name"]: x for x in cluster.request("GET", "/api/v1").json["resources"]}
    services = core["services"]
    assert (services["kind"], services["shortNames"], services["namespaced"]) == (
        "Service",
        ["svc"],
        True,
    )
    assert "all" in services["categories"]
    path = f"/api/v1/namespaces/{cluster.namespace}/services"
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ddp"},
        "spec": {
            "clusterIP": "None",
            "selector": {"karimasu.io/job-id": "1"},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": 29500}],
        },
    }
    created = cluster.request("POST", path, body)
    assert created.status == 201
    spec = created.json["spec"]
    assert (spec["clusterIP"], spec["type"], spec["ports"][0]["protocol"]) == (
        "None",
        "ClusterIP",
        "TCP",
    )
    assert cluster.request("POST", path, body).status == 409
    assert cluster.request("DELETE", f"{path}/ddp").status == 200
