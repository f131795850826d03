"""What a member may put into a job's pod, and which privileges are theirs (issue: jobs true
to a real cluster, items 3, 4 and 7): each case as the review found it, through the API."""

from __future__ import annotations

import time

import pytest

from scheduler.cluster.mapping import job_manifest
from scheduler.models import Job, TeamQuota
from scheduler.services.jobs import job_spec
from tests.conftest import assert_error
from tests.scheduler.test_jobs_api import submit

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "env",
    [
        {"NVIDIA_VISIBLE_DEVICES": "all"},
        {"CUDA_VISIBLE_DEVICES": "0,1,2,3"},
        {"NVIDIA_DRIVER_CAPABILITIES": "all"},
        {"LD_PRELOAD": "libx.so"},
        {"bad name!": "1"},
        {f"V{i}": "x" for i in range(101)},
        {"BIG": "x" * 70_000},
    ],
    ids=["nvidia-all", "cuda-devices", "nvidia-caps", "ld-preload", "bad-name", "many", "huge"],
)
def test_device_and_oversized_environment_is_refused(bob, nodes, env):
    error = assert_error(submit(bob, env=env), 400)
    assert "env" in error["details"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "annotations",
    [
        {"bad key!": "x"},
        {"container.apparmor.security.beta.kubernetes.io/main": "unconfined"},
        {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"},
        {"sidecar.istio.io/inject": "false"},
        {"k8s.v1.cni.cncf.io/networks": "host-net"},
        {"karimasu.io/job-id": "1"},
        {"note": "x" * 300_000},
        {f"k{i}": "v" for i in range(40)},
    ],
    ids=["bad-key", "apparmor", "seccomp", "istio", "multus", "spoof", "huge", "many"],
)
def test_pod_changing_spoofing_or_oversized_annotations_are_refused(bob, nodes, annotations):
    error = assert_error(submit(bob, annotations=annotations), 400)
    assert "annotations" in error["details"]


def test_plain_and_admin_allowed_annotations_pass(bob, nodes, settings):
    settings.KARIMASU_JOB_ANNOTATION_PREFIXES = ["wandb.ai"]
    body = submit(bob, annotations={"note": "baseline", "wandb.ai/run": "r1"})
    assert body.status_code == 201, body.content


@pytest.mark.parametrize(
    "image",
    ["", "UPPER/case:1", "a b:1", "x:tag with space", "registry.io/a//b", "-x:1", "x:1@sha256:zz"],
)
def test_malformed_image_references_are_refused(bob, nodes, image):
    error = assert_error(submit(bob, image=image), 400)
    assert "image" in error["details"]


def test_a_registry_allow_list_holds(bob, nodes, settings):
    settings.KARIMASU_ALLOWED_REGISTRIES = ["registry.example.com", "nvcr.io"]
    assert submit(bob, image="nvcr.io/nvidia/pytorch:24.05-py3").status_code == 201
    assert submit(bob, image="registry.example.com:5000/x/y:1").status_code == 400
    error = assert_error(submit(bob, image="pytorch/pytorch:2.4"), 400)
    assert "docker.io" in error["message"]


def test_a_job_without_gpus_sees_none(bob, nodes):
    job = Job.objects.get(pk=submit(bob, gpus=0).json()["id"])
    job.node = nodes["tesla-01"]
    manifest = job_manifest(job_spec(job), namespace="karimasu-jobs")
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in env


def test_members_run_at_the_default_priority_and_preemptibly(alice, bob, nodes, vision):
    error = assert_error(submit(bob, priority_class="high"), 403, "priority_not_allowed")
    assert "leads" in error["message"]
    assert_error(submit(bob, preemptible=False), 403, "preemptible_required")
    # A lower class is fine once the team allows it to members; the lead may use any.
    TeamQuota.objects.create(team=vision, guaranteed_gpus=2, member_priority_classes=["low"])
    assert submit(bob, priority_class="low").status_code == 201
    assert submit(alice, priority_class="high").status_code == 201


def test_non_preemptible_work_fits_within_the_guarantee(alice, nodes, vision):
    assert_error(submit(alice, preemptible=False, gpus=1), 403, "over_guarantee")
    TeamQuota.objects.create(team=vision, guaranteed_gpus=2)
    assert submit(alice, preemptible=False, gpus=2).status_code == 201
    error = assert_error(submit(alice, preemptible=False, gpus=1), 403, "over_guarantee")
    assert error["details"] == {"gpus": 1, "guaranteed": 2, "held": 2}
    assert submit(alice, preemptible=True, gpus=2).status_code == 201  # borrowing stays open


def _sweep(persona, template: dict, parameters: dict):
    body = {
        "name": "s",
        "template": {"name": "x", "team": "vision", "image": "x:1", "max_runtime_s": 600}
        | template,
        "parameters": parameters,
    }
    return persona.client().post("/api/v1/sweeps/", body, format="json")


def test_a_huge_grid_is_counted_not_expanded(alice, nodes):
    grid = {f"p{i}": list(range(10)) for i in range(9)}  # 10^9 jobs in a few hundred bytes
    started = time.monotonic()
    error = assert_error(_sweep(alice, {}, {"grid": grid}), 400)
    assert "at most 500" in error["message"] and "1000000000" in error["message"]
    assert time.monotonic() - started < 5  # expanding it would take minutes and gigabytes


@pytest.mark.parametrize("arg", ["{lr.__class__.__mro__}", "{lr:>1000000}", "{lr[0]}", "{0}", "{}"])
def test_sweep_args_substitute_plain_names_only(alice, nodes, arg):
    response = _sweep(alice, {"args": [arg]}, {"list": [{"lr": 0.1}]})
    assert response.status_code == 201, response.content
    job = Job.objects.get(sweep_id=response.json()["id"])
    assert job.args == [arg]  # not a placeholder: left as written, nothing evaluated


def test_sweep_placeholders_fill_and_unknown_names_are_refused(alice, nodes):
    response = _sweep(alice, {"args": ["--lr={lr}", "{{lr}}"]}, {"list": [{"lr": 0.1}]})
    assert Job.objects.get(sweep_id=response.json()["id"]).args == ["--lr=0.1", "{0.1}"]
    error = assert_error(_sweep(alice, {"args": ["{nope}"]}, {"list": [{"lr": 1}]}), 400)
    assert "{nope}" in error["message"]


def test_a_sweep_parameter_cannot_set_a_device_variable(alice, nodes):
    response = _sweep(alice, {}, {"list": [{"nvidia_visible_devices": "all"}]})
    assert "NVIDIA_VISIBLE_DEVICES" in assert_error(response, 400)["message"]


def test_secrets_are_read_by_reference_from_secrets_named_for_the_team(bob, charlie, nodes, vision):
    from scheduler.models import NamedSecret

    wandb = NamedSecret.objects.create(name="wandb", secret="vision-wandb", keys=["api-key"])
    wandb.teams.add(vision)
    response = submit(bob, secrets={"WANDB_API_KEY": "wandb/api-key"})
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.secret_env == {"WANDB_API_KEY": {"secret": "vision-wandb", "key": "api-key"}}
    job.node = nodes["tesla-01"]
    env = job_manifest(job_spec(job), namespace="ns")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    assert {
        "name": "WANDB_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "vision-wandb", "key": "api-key"}},
    } in env
    # Another team's job cannot name it; nor an unlisted key, a reserved name, or a clash.
    error = assert_error(
        charlie.client().post(
            "/api/v1/jobs/",
            {
                "name": "x",
                "team": "nlp",
                "image": "x:1",
                "max_runtime_s": 600,
                "secrets": {"K": "wandb/api-key"},
            },
            format="json",
        ),
        400,
    )
    assert "available to nlp" in error["message"]
    assert "secrets" in assert_error(submit(bob, secrets={"K": "wandb/other"}), 400)["details"]
    assert (
        "env"
        in assert_error(submit(bob, secrets={"CUDA_VISIBLE_DEVICES": "wandb/api-key"}), 400)[
            "details"
        ]
    )
    assert_error(submit(bob, env={"K": "1"}, secrets={"K": "wandb/api-key"}), 400)
    assert_error(submit(bob, secrets={"K": "vision-wandb"}), 400)
