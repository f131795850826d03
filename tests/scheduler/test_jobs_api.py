"""Submitting, listing, cancelling jobs and sweeps through the API."""

from __future__ import annotations

import pytest

from scheduler import states
from scheduler.models import Job, NamedMount, TeamQuota
from tests.conftest import assert_error
from tests.scheduler.conftest import submit_job

pytestmark = pytest.mark.django_db


submit = submit_job


def test_submit_queues_the_job_with_defaults(alice, nodes):
    response = submit(alice)
    assert response.status_code == 201, response.content
    job = response.json()
    assert (job["status"], job["priority_class"], job["preemptible"], job["attempt"]) == (
        "queued",
        "normal",
        True,
        1,
    )
    assert job["owner"] == "alice" and job["team"] == "vision"


@pytest.mark.parametrize(
    "overrides, want_field, want_text",
    [
        pytest.param(
            {"gpu_models": ["H100"]}, "gpu_models", "Unknown GPU model", id="unknown-model"
        ),
        pytest.param(
            {"gpus": 5, "gpu_models": ["Tesla-V100-SXM2-16GB"]},
            "gpus",
            "No node has 5 GPUs",
            id="more-gpus-than-any-node-of-the-model",
        ),
        pytest.param({"gpus": 9}, "gpus", "", id="more-than-eight"),
        pytest.param({"max_runtime_s": 10}, "max_runtime_s", "between", id="too-short"),
        pytest.param(
            {"priority_class": "urgent"}, "priority_class", "one of", id="unknown-priority"
        ),
        pytest.param({"team": "nlp"}, "team", "not a member", id="not-my-team"),
        pytest.param({"image": "has space"}, "image", "image", id="bad-image"),
        pytest.param({"env": {"1BAD": "x"}}, "env", "1BAD", id="bad-env-name"),
        pytest.param({"mounts": ["nope"]}, "mounts", "Unknown mount", id="unknown-mount"),
        pytest.param({"memory_mb": 10**9}, "memory_mb", "No node", id="too-much-memory"),
    ],
)
def test_invalid_jobs_are_refused_naming_the_field(
    alice, nodes, nlp, overrides, want_field, want_text
):
    error = assert_error(submit(alice, **overrides), 400)
    assert want_field in error["details"], error
    assert want_text in error["message"]
    assert not Job.objects.exists()


def test_over_the_users_gpu_cap_is_refused(alice, nodes, vision):
    TeamQuota.objects.create(team=vision, user_gpu_cap=2)
    error = assert_error(
        submit(alice, gpus=4, gpu_models=["NVIDIA-A100-SXM4-80GB"]), 403, "over_limit"
    )
    assert error["details"] == {"gpus": 4, "limit": 2}


def test_read_only_mount_cannot_be_written(alice, nodes):
    NamedMount.objects.create(name="datasets", claim="datasets", path="/data")
    assert submit(alice, mounts=["datasets"]).status_code == 201
    assert_error(submit(alice, mounts=[{"name": "datasets", "write": True}]), 400)


def test_users_see_their_own_and_their_teams_jobs_admins_all(
    alice, bob, charlie, admin, nodes, nlp
):
    submit(alice)
    charlie_job = (
        charlie.client()
        .post(
            "/api/v1/jobs/",
            {"name": "bert", "team": "nlp", "image": "x:1", "max_runtime_s": 600},
            format="json",
        )
        .json()
    )
    names = lambda p: {j["name"] for j in p.client().get("/api/v1/jobs/").json()["results"]}  # noqa: E731
    assert names(alice) == names(bob) == {"resnet"}
    assert names(charlie) == {"bert"}
    assert names(admin) == {"resnet", "bert"}
    assert_error(alice.client().get(f"/api/v1/jobs/{charlie_job['id']}/"), 404)


def test_cancel_permissions_and_idempotence(alice, bob, charlie, nodes):
    job = submit(bob).json()
    assert_error(charlie.client().post(f"/api/v1/jobs/{job['id']}/cancel/"), 404)
    response = alice.client().post(f"/api/v1/jobs/{job['id']}/cancel/")  # bob's lead
    assert response.json()["status"] == "cancelled"
    again = bob.client().post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert again.json()["status"] == "cancelled"
    detail = bob.client().get(f"/api/v1/jobs/{job['id']}/").json()
    assert [e["to_status"] for e in detail["events"]] == ["cancelled"]


def test_member_cannot_cancel_a_teammates_job(alice, bob, nodes):
    job = submit(alice).json()
    assert_error(bob.client().post(f"/api/v1/jobs/{job['id']}/cancel/"), 403)
    assert Job.objects.get(pk=job["id"]).status == states.QUEUED


def test_sweep_expands_a_grid_into_jobs_with_parameters(alice, nodes):
    response = alice.client().post(
        "/api/v1/sweeps/",
        {
            "name": "lr-sweep",
            "parallelism": 2,
            "template": {
                "name": "x",
                "team": "vision",
                "image": "x:1",
                "max_runtime_s": 600,
                "args": ["--lr", "{lr}", "--bs", "{bs}"],
            },
            "parameters": {"grid": {"lr": [0.1, 0.01, 0.001], "bs": [32, 64]}},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    sweep = response.json()
    assert sweep["counts"] == {"queued": 6} and sweep["status"] == "queued"
    jobs = Job.objects.filter(sweep_id=sweep["id"]).order_by("pk")
    assert [j.args for j in jobs][:2] == [
        ["--lr", "0.1", "--bs", "32"],
        ["--lr", "0.1", "--bs", "64"],
    ]
    assert jobs[0].env == {"LR": "0.1", "BS": "32"}
    assert {j.name for j in jobs} == {f"lr-sweep-{i}" for i in range(1, 7)}


def test_cancel_a_whole_sweep(alice, nodes):
    sweep = (
        alice.client()
        .post(
            "/api/v1/sweeps/",
            {
                "name": "s",
                "template": {"name": "x", "team": "vision", "image": "x:1", "max_runtime_s": 600},
                "parameters": {"list": [{"seed": 1}, {"seed": 2}]},
            },
            format="json",
        )
        .json()
    )
    result = alice.client().post(f"/api/v1/sweeps/{sweep['id']}/cancel/").json()
    assert result["status"] == "cancelled" and result["counts"] == {"cancelled": 2}


@pytest.mark.parametrize(
    "parameters, want_text",
    [
        pytest.param({"grid": {"lr": []}}, "non-empty", id="empty-grid-values"),
        pytest.param({"list": []}, "one object", id="empty-list"),
        pytest.param({"other": 1}, "grid", id="neither"),
        pytest.param(
            {"grid": {"lr": list(range(30)), "bs": list(range(30))}}, "at most 500", id="too-many"
        ),
    ],
)
def test_bad_sweep_parameters(alice, nodes, parameters, want_text):
    error = assert_error(
        alice.client().post(
            "/api/v1/sweeps/",
            {
                "name": "s",
                "template": {"name": "x", "team": "vision", "image": "x:1", "max_runtime_s": 600},
                "parameters": parameters,
            },
            format="json",
        ),
        400,
    )
    assert want_text in error["message"]


def test_job_list_does_not_query_per_job(alice, nodes, django_assert_max_num_queries):
    for _ in range(15):
        submit(alice)
    with django_assert_max_num_queries(6):
        response = alice.client().get("/api/v1/jobs/")
    assert response.json()["count"] == 15


def test_priority_classes_read_by_all_written_by_admins(alice, admin, nodes):
    names = [p["name"] for p in alice.client().get("/api/v1/priority-classes/").json()["results"]]
    assert names == ["high", "normal", "low"]
    assert_error(
        alice.client().post("/api/v1/priority-classes/", {"name": "x", "value": 5}, format="json"),
        403,
    )
    created = admin.client().post(
        "/api/v1/priority-classes/",
        {"name": "urgent", "value": 500, "is_default": True},
        format="json",
    )
    assert created.status_code == 201
    defaults = [
        p["name"]
        for p in alice.client().get("/api/v1/priority-classes/").json()["results"]
        if p["is_default"]
    ]
    assert defaults == ["urgent"]
    assert submit(alice).json()["priority_class"] == "urgent"


def test_quotas_members_read_admins_write(alice, bob, charlie, admin, nodes):
    url = "/api/v1/teams/vision/quota/"
    assert bob.client().get(url).json()["guaranteed_gpus"] == 0
    assert_error(charlie.client().get(url), 403)
    assert_error(alice.client().patch(url, {"guaranteed_gpus": 8}, format="json"), 403)
    changed = admin.client().patch(url, {"guaranteed_gpus": 4, "share_weight": 2}, format="json")
    assert changed.json()["guaranteed_gpus"] == 4
    assert_error(admin.client().patch(url, {"share_weight": 0}, format="json"), 400)


def test_cancel_wins_a_race_with_the_scheduling_cycle(alice, nodes):
    from django.utils import timezone

    from scheduler.services.submission import cancel_job

    job = Job.objects.get(pk=submit(alice).json()["id"])  # read while queued
    # A cycle admits it before the cancel writes (the 409 the review hit).
    Job.objects.filter(pk=job.pk).update(
        status=states.ADMITTED, node=nodes["tesla-01"], gpu_indices=[0]
    )
    cancelled = cancel_job(alice.user, job, now=timezone.now())
    assert cancelled.status == states.CANCELLED
    assert Job.objects.get(pk=job.pk).status == states.CANCELLED


def test_with_no_node_at_all_jobs_queue_and_wait_for_one(alice, vision):
    """A new install before its first inventory (or a cluster whose nodes all left) cannot
    judge a job too big: it queues, and the cycle says it waits for a node, in words, in
    both languages. It used to be refused as "No node has 0 GPUs (the largest has 0)"."""
    from django.test import Client
    from django.utils import timezone

    from scheduler.services.cycle import run_cycle

    cpu_only = submit(alice, gpus=0)
    on_a100 = submit(alice, gpus=2, gpu_models=["NVIDIA-A100-SXM4-80GB"], cpu_millis=4000)
    assert (cpu_only.status_code, on_a100.status_code) == (201, 201), on_a100.content
    run_cycle(None, now=timezone.now())
    for response in (cpu_only, on_a100):
        job = alice.client().get(f"/api/v1/jobs/{response.json()['id']}/").json()
        assert (job["status"], job["reason"]) == ("queued", "no-nodes")
        assert job["message"].startswith("no node is schedulable: none has joined")
        ja = alice.client().get(f"/api/v1/jobs/{response.json()['id']}/", HTTP_ACCEPT_LANGUAGE="ja")
        assert ja.json()["message"].startswith("スケジュール可能なノードがありません"), ja.json()
    alice.user.language = "ja"
    alice.user.save(update_fields=["language"])
    browser = Client()
    browser.force_login(alice.user)
    page = browser.get(f"/jobs/{cpu_only.json()['id']}/")
    assert page.status_code == 200 and "ノード待ち" in page.content.decode()


def test_with_nodes_a_job_too_big_for_all_is_still_refused(alice, nodes):
    error = assert_error(submit(alice, gpus=0, memory_mb=10**9), 400)
    assert "memory_mb" in error["details"]
