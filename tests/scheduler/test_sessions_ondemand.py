"""On-demand sessions (issue 16): a workspace without a booking, submitted as a job through
the normal path (quotas, limits, priorities), queued with the job's reason, position and
ETA until a scheduling cycle places it, then run like a booking's session: warned 15 and 5
minutes before its duration ends, stopped then, extendable within the limits, idle-culled,
opened by its owner only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from scheduler import states
from scheduler.models import Job, Session, TeamQuota, WorkspaceImage
from scheduler.services import access, sessions
from scheduler.services.cycle import run_cycle
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

A100 = "NVIDIA-A100-SXM4-80GB"


@pytest.fixture
def workspace(db) -> WorkspaceImage:
    return WorkspaceImage.objects.create(
        name="stand-in",
        title="Stand-in workspace",
        image="karimasu/workspace:demo",
        port=8888,
        command=["python", "-m", "kube_emulator.workspace"],
        env={"GREETING": "hi"},
    )


def ask(persona, **body):
    body = {"image": "stand-in", "team": "vision", "gpus": 2, **body}
    return persona.client().post("/api/v1/sessions/", body, format="json")


def cycle(now=None):
    return run_cycle(None, now=now or timezone.now(), foreign_busy=frozenset())


def blocker(charlie, nlp, node, indices, minutes=60) -> Job:
    """charlie's non-preemptible job holding ``indices`` of ``node`` for ``minutes`` more."""
    now = timezone.now()
    return Job.objects.create(
        name="train",
        owner=charlie.user,
        team=nlp,
        image="pytorch/pytorch:2.4",
        gpus=len(indices),
        max_runtime_s=minutes * 60 + 60,
        submitted_at=now - timedelta(minutes=2),
        started_at=now - timedelta(minutes=1),
        status=states.RUNNING,
        node=node,
        gpu_indices=indices,
        preemptible=False,
    )


def _browser(persona):
    from django.test import Client

    client = Client()
    client.force_login(persona.user)
    return client


def session_data(persona, sid) -> dict:
    response = persona.client().get(f"/api/v1/sessions/{sid}/")
    assert response.status_code == 200, response.content
    return response.json()


def run(sid, started) -> Job:
    """The cluster started the session's pod at ``started`` (what the watcher records)."""
    job = Session.objects.get(pk=sid).job
    Job.objects.filter(pk=job.pk).update(status=states.RUNNING, started_at=started)
    job.refresh_from_db()
    return job


def test_an_on_demand_session_waits_in_the_queue_then_a_cycle_places_it(
    bob, charlie, nlp, nodes, workspace, django_capture_on_commit_callbacks
) -> None:
    held = blocker(charlie, nlp, nodes["a100-01"], [0, 1, 2, 3], minutes=45)
    with django_capture_on_commit_callbacks(execute=False):
        response = ask(bob, gpu_model=A100, hours=2)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["state"] == "queued"
    assert data["on_demand"] is True and data["reservation"] is None
    assert data["status"] == states.QUEUED
    assert data["node"] is None and data["gpus"] == []
    assert data["duration_s"] == 7200
    assert data["ends_at"] is None and data["seconds_left"] is None
    assert data["preemptible"] is True  # a member: the rules allow no more
    job = Job.objects.get(pk=data["job"])
    assert (job.owner, job.team.slug, job.gpus, job.gpu_models) == (bob.user, "vision", 2, [A100])
    assert job.max_runtime_s == 7200
    assert job.env["KARIMASU_BASE_URL"] == f"/s/{data['id']}/"
    assert job.env["GREETING"] == "hi"
    assert job.annotations[sessions.WORKSPACE_ANNOTATION] == "jupyter"
    assert job.annotations["karimasu.io/workspace-port"] == "8888"

    cycle()  # the only A100s are held: it waits, and says why, where and until when
    data = session_data(bob, data["id"])
    assert data["state"] == "queued"
    assert data["reason"]
    assert data["queue_position"] == 1
    assert data["eta"] is not None
    assert job.__class__.objects.get(pk=job.pk).status == states.QUEUED
    html = _browser(bob).get(f"/sessions/{data['id']}/").content.decode()
    assert "Queued for GPUs" in html and "position 1" in html

    Job.objects.filter(pk=held.pk).update(status=states.SUCCEEDED, finished_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False):
        report = cycle()
    assert job.pk in report.admitted
    data = session_data(bob, data["id"])
    assert data["state"] == "starting"
    assert data["node"] == "a100-01" and len(data["gpus"]) == 2
    started = timezone.now()
    run(data["id"], started)
    data = session_data(bob, data["id"])
    assert data["state"] == "running"
    assert data["ends_at"] is not None
    assert 7100 < data["seconds_left"] <= 7200


@pytest.fixture
def running(bob, nodes, workspace, django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=False):
        response = ask(bob, gpus=1, hours=1)
        assert response.status_code == 201, response.content
        cycle()
    sid = response.json()["id"]
    started = timezone.now() - timedelta(minutes=1)
    run(sid, started)
    return {"id": sid, "job": response.json()["job"], "end": started + timedelta(hours=1)}


def _never_idle(*_args) -> bool:
    return False


def _lifecycle(now, is_idle=_never_idle, last_activity=lambda s: None):
    return sessions.run_lifecycle(now=now, is_idle=is_idle, last_activity=last_activity)


def test_warned_at_15_and_5_minutes_then_stopped_at_its_duration(
    bob, running, django_capture_on_commit_callbacks, eager_tasks
) -> None:
    sid, end = running["id"], running["end"]
    with django_capture_on_commit_callbacks(execute=True):
        assert _lifecycle(end - timedelta(minutes=20)).warned == []
        assert _lifecycle(end - timedelta(minutes=14)).warned == [(sid, 15)]
        assert _lifecycle(end - timedelta(minutes=13)).warned == []
        assert _lifecycle(end - timedelta(minutes=4)).warned == [(sid, 5)]
    assert len(mail.outbox) == 2
    assert "stops in 15 minutes" in mail.outbox[0].body
    assert "time is up" in mail.outbox[0].body
    assert Job.objects.get(pk=running["job"]).status == states.RUNNING
    with django_capture_on_commit_callbacks(execute=False):
        assert _lifecycle(end + timedelta(seconds=1)).stopped == [sid]
    session = Session.objects.get(pk=sid)
    assert session.stop_reason == "time_up"
    assert session.job.status == states.CANCELLED
    assert "time was up" in session.job.message


def test_a_queued_session_is_neither_warned_nor_stopped(
    bob, charlie, nlp, nodes, workspace, django_capture_on_commit_callbacks
) -> None:
    for node, indices in (("tesla-01", [0, 1]), ("tesla-02", [0, 1]), ("a100-01", [0, 1, 2, 3])):
        blocker(charlie, nlp, nodes[node], indices)
    with django_capture_on_commit_callbacks(execute=False):
        sid = ask(bob, gpus=1, hours=0.25).json()["id"]
        report = _lifecycle(timezone.now() + timedelta(hours=1))
    assert report.warned == [] and report.stopped == []
    assert Session.objects.get(pk=sid).job.status == states.QUEUED


def test_extend_adds_to_the_runtime_within_the_limit(
    bob, running, settings, django_capture_on_commit_callbacks
) -> None:
    settings.KARIMASU_SESSION_MAX_HOURS = 2
    path = f"/api/v1/sessions/{running['id']}/extend/"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = bob.client().post(path, {"minutes": 30}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["duration_s"] == 5400
    assert Job.objects.get(pk=running["job"]).max_runtime_s == 5400
    assert callbacks  # the cluster Job's deadline is patched after commit
    job = Job.objects.get(pk=running["job"])
    assert job.holds_gpus_until(timezone.now()) >= running["end"] + timedelta(minutes=30)
    # the warnings come before the new end, not the old one
    with django_capture_on_commit_callbacks(execute=False):
        assert _lifecycle(running["end"] + timedelta(minutes=1)).stopped == []
    over = bob.client().post(path, {"minutes": 31}, format="json")
    body = assert_error(over, 403, "over_limit")
    assert "2 hours" in body["message"]
    assert Job.objects.get(pk=running["job"]).max_runtime_s == 5400


def test_extend_never_runs_into_a_booking_of_its_gpus(
    alice, bob, running, unlimited, django_capture_on_commit_callbacks
) -> None:
    job = Job.objects.get(pk=running["job"])
    start = running["end"] + timedelta(minutes=10)
    response = alice.client().post(
        "/api/v1/reservations/",
        {
            "team": "vision",
            "node": job.node.name,
            "gpus": job.gpu_indices,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    path = f"/api/v1/sessions/{running['id']}/extend/"
    with django_capture_on_commit_callbacks(execute=False):
        assert bob.client().post(path, {"minutes": 5}, format="json").status_code == 200
        assert_error(bob.client().post(path, {"minutes": 10}, format="json"), 409, "booked")
    assert Job.objects.get(pk=running["job"]).max_runtime_s == 3900


def test_idle_culling_applies_the_same_way(
    bob, running, settings, django_capture_on_commit_callbacks
) -> None:
    settings.KARIMASU_SESSION_IDLE_MINUTES = 30
    now = timezone.now()
    Job.objects.filter(pk=running["job"]).update(started_at=now - timedelta(minutes=40))
    seen = []

    def idle(session, since, until) -> bool:
        seen.append(session.pk)
        return True

    old = now - timedelta(minutes=45)
    with django_capture_on_commit_callbacks(execute=False):
        assert _lifecycle(now, idle, lambda s: now).culled == []
        assert _lifecycle(now, idle, lambda s: old).culled == [running["id"]]
    assert seen == [running["id"], running["id"]]
    assert Session.objects.get(pk=running["id"]).stop_reason == "idle"


def test_a_preempted_session_stops(bob, running, django_capture_on_commit_callbacks) -> None:
    Job.objects.filter(pk=running["job"]).update(status=states.PREEMPTED)
    assert session_data(bob, running["id"])["state"] == "queued"
    with django_capture_on_commit_callbacks(execute=False):
        assert _lifecycle(timezone.now()).stopped == [running["id"]]
    assert Session.objects.get(pk=running["id"]).stop_reason == "preempted"


def test_a_lead_within_the_guarantee_gets_a_non_preemptible_session(
    alice, vision, nodes, workspace, django_capture_on_commit_callbacks
) -> None:
    TeamQuota.objects.create(team=vision, guaranteed_gpus=2)
    with django_capture_on_commit_callbacks(execute=False):
        first = ask(alice, gpus=2)
        second = ask(alice, gpus=1)
    assert first.status_code == 201 and second.status_code == 201
    assert first.json()["preemptible"] is False
    assert second.json()["preemptible"] is True  # over the guarantee: preemptible instead


def test_only_the_owner_opens_it(alice, bob, charlie, admin, running) -> None:
    session = Session.objects.get(pk=running["id"])
    assert access.can_open_session(bob.user, session) is True
    for persona in (alice, charlie, admin):
        assert access.can_open_session(persona.user, session) is False
    assert_error(charlie.client().get(f"/api/v1/sessions/{session.pk}/"), 404)
    assert alice.client().get(f"/api/v1/sessions/{session.pk}/").status_code == 200  # lead


def test_quotas_and_limits_refuse_with_a_json_4xx(
    bob, vision, nodes, workspace, settings, django_capture_on_commit_callbacks
) -> None:
    TeamQuota.objects.create(team=vision, user_gpu_cap=1)
    assert_error(ask(bob, gpus=2), 403, "over_limit")
    settings.KARIMASU_SESSION_MAX_HOURS = 8
    body = assert_error(ask(bob, gpus=1, hours=9), 400, "invalid")
    assert "hours" in body["details"]
    assert_error(ask(bob, gpus=1, gpu_model="H100"), 400, "invalid")
    assert_error(ask(bob, gpus=9), 400, "invalid")
    assert_error(ask(bob, team="nlp", gpus=1), 400, "invalid")
    assert_error(ask(bob, gpus=1, image="nope"), 400, "invalid")
    assert_error(ask(bob, gpus=1, hours="lots"), 400, "invalid")
    assert_error(ask(bob, gpus=1, reservation=1), 400, "invalid")
    response = bob.client().post("/api/v1/sessions/", {"image": "stand-in"}, format="json")
    assert_error(response, 400, "invalid")
    assert not Session.objects.exists() and not Job.objects.exists()


def test_the_pages_start_an_on_demand_session(
    bob, nodes, workspace, django_capture_on_commit_callbacks
) -> None:
    client = _browser(bob)
    page = client.get("/sessions/").content.decode()
    assert 'id="start-on-demand"' in page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/sessions/",
            {"mode": "on_demand", "team": "vision", "gpus": "1", "hours": "2", "image": "stand-in"},
        )
    session = Session.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/sessions/{session.pk}/"
    assert session.reservation is None and session.job.max_runtime_s == 7200
    html = client.get(f"/sessions/{session.pk}/").content.decode()
    assert "Queued" in html and "can be preempted" in html
    # a refusal is a message, not an error page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/sessions/",
            {"mode": "on_demand", "team": "vision", "gpus": "99", "image": "stand-in"},
        )
    assert response.status_code == 302
    assert Session.objects.count() == 1
