"""The jobs pages (``/jobs/``, ``/jobs/<id>/``): what one may see, submitting from a form
through the same service as the API, a job's timeline and log, and cancelling."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from scheduler.models import Job
from scheduler.services import submission

pytestmark = pytest.mark.django_db


def _client(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def _submit(persona, team: str, name: str = "resnet", **fields) -> Job:
    request = submission.JobRequest(
        name=name, image="pytorch/pytorch:2.4", team=team, max_runtime_s=3600, **fields
    )
    return submission.submit_job(persona.user, request, now=timezone.now())


def _form(**overrides) -> dict[str, str]:
    return {
        "job-name": "bert-large",
        "job-team": "vision",
        "job-image": "pytorch/pytorch:2.4",
        "job-command": "python train.py --lr '3e-4' --tag \"a b\"",
        "job-gpus": "2",
        "job-max_runtime_h": "1.5",
        "job-priority_class": "",
        "job-preemptible": "on",
        "job-env": "WANDB_MODE=offline\nSEED=7\n",
        **overrides,
    }


def test_the_pages_need_a_login(client) -> None:
    assert client.get("/jobs/")["Location"].startswith("/accounts/login/")
    assert client.get("/jobs/1/")["Location"].startswith("/accounts/login/")


def test_the_list_shows_ones_own_and_ones_teams_jobs(alice, bob, charlie, nodes) -> None:
    ours = _submit(alice, "vision", "mine")
    teammate = _submit(bob, "vision", "teammates")
    _submit(charlie, "nlp", "outsiders")
    page = _client(alice).get("/jobs/").content.decode()
    table = page[page.index('id="jobs"') :]
    assert f'href="/jobs/{ours.pk}/">mine<' in table
    assert f'href="/jobs/{teammate.pk}/">teammates<' in table
    assert "outsiders" not in table
    only_mine = _client(alice).get("/jobs/?mine=1").content.decode()
    assert "teammates" not in only_mine[only_mine.index('id="jobs"') :]


def test_submitting_from_the_form(alice, nodes) -> None:
    response = _client(alice).post("/jobs/", _form(), follow=True)
    job = Job.objects.get()
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert job.command == ["python", "train.py", "--lr", "3e-4", "--tag", "a b"]
    assert job.env == {"WANDB_MODE": "offline", "SEED": "7"}
    assert (job.gpus, job.max_runtime_s, job.preemptible, job.status) == (2, 5400, True, "queued")
    assert job.priority_class == "normal"  # the default class
    page = response.content.decode()
    assert f"Submitted job {job.pk}." in page
    assert "The job has not started yet: no log." in page
    assert "python train.py --lr 3e-4 --tag a b" in page


def test_form_mistakes_are_explained_and_nothing_is_submitted(alice, nodes) -> None:
    page = (
        _client(alice)
        .post("/jobs/", _form(**{"job-env": "JUSTANAME", "job-command": "python 'unclosed"}))
        .content.decode()
    )
    assert "Line 1 is not NAME=value." in page
    assert "The command does not parse" in page
    too_big = _client(alice).post("/jobs/", _form(**{"job-gpus": "8"})).content.decode()
    assert 'class="error"' in too_big  # the service's refusal: no node has 8 GPUs
    assert not Job.objects.exists()


def test_a_job_page_has_its_timeline_and_can_be_cancelled(alice, nodes) -> None:
    job = _submit(alice, "vision")
    client = _client(alice)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Cancel job" in page
    assert '→ <span class="status queued tone-wait">Queued</span>' in page
    response = client.post(f"/jobs/{job.pk}/", {"action": "cancel"}, follow=True)
    job.refresh_from_db()
    assert job.status == "cancelled"
    page = response.content.decode()
    assert f"Cancelled job {job.pk}." in page
    assert "Cancel job" not in page  # final: nothing to cancel


def test_a_teammate_sees_but_cannot_cancel_and_an_outsider_gets_404(
    alice, bob, charlie, nodes
) -> None:
    job = _submit(alice, "vision")
    page = _client(bob).get(f"/jobs/{job.pk}/").content.decode()
    assert "resnet" in page and "Cancel job" not in page
    _client(bob).post(f"/jobs/{job.pk}/", {"action": "cancel"})
    job.refresh_from_db()
    assert job.status == "queued"
    assert _client(charlie).get(f"/jobs/{job.pk}/").status_code == 404


def test_the_jobs_page_speaks_japanese(alice, nodes) -> None:
    alice.user.language = "ja"
    alice.user.save()
    page = _client(alice).get("/jobs/").content.decode()
    assert "ジョブを投入" in page


def test_a_multi_node_job_from_the_form_and_its_ranks_on_its_page(alice, nodes) -> None:
    response = _client(alice).post("/jobs/", _form(**{"job-nodes": "2"}), follow=True)
    job = Job.objects.get()
    assert (job.nodes, job.gpus) == (2, 2)
    assert "2 nodes × 2 (4 in all)" in response.content.decode()
    placements = [
        {"node": "tesla-02", "gpu_indices": [0, 1]},
        {"node": "tesla-01", "gpu_indices": [0, 1]},
    ]
    Job.objects.filter(pk=job.pk).update(
        status="running", node=nodes["tesla-02"], gpu_indices=[0, 1], placements=placements
    )
    page = _client(alice).get(f"/jobs/{job.pk}/").content.decode()
    assert "rank 0: tesla-02 [0, 1]" in page and "rank 1: tesla-01 [0, 1]" in page
    listed = _client(alice).get("/jobs/").content.decode()
    assert "tesla-02 [0, 1] +1" in listed and "2 × 2" in listed
