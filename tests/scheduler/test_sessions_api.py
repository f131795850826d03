"""Interactive sessions (issue 16): start on a booking, who may see/stop/extend, the
lifecycle pass (warnings at 15 and 5 minutes, stop at the booking's end, idle culling)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from scheduler import states
from scheduler.models import Job, Reservation, Session, WorkspaceImage
from scheduler.services import sessions
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(db) -> WorkspaceImage:
    return WorkspaceImage.objects.create(
        name="stand-in",
        title="Stand-in workspace",
        image="karimasu/workspace:demo",
        kind=WorkspaceImage.Kind.JUPYTER,
        port=8888,
        command=["python", "-m", "kube_emulator.workspace"],
        env={"GREETING": "hi"},
    )


def borrow(persona, gpus=2, hours=1) -> dict:
    response = persona.client().post(
        "/api/v1/reservations/borrow/",
        {"team": "vision", "gpus": gpus, "hours": hours, "purpose": "notebook"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def start(persona, reservation_id, image="stand-in"):
    return persona.client().post(
        "/api/v1/sessions/", {"reservation": reservation_id, "image": image}, format="json"
    )


@pytest.fixture
def bobs_session(bob, nodes, unlimited, workspace, django_capture_on_commit_callbacks):
    booking = borrow(bob)
    with django_capture_on_commit_callbacks(execute=False):
        response = start(bob, booking["id"])
    assert response.status_code == 201, response.content
    return response.json()


def test_a_session_starts_on_the_bookings_node_and_gpus(bob, bobs_session) -> None:
    data = bobs_session
    booking = Reservation.objects.get(pk=data["reservation"])
    assert data["state"] == "starting"
    assert data["status"] == states.ADMITTED
    assert data["node"] == booking.node.name
    assert data["gpus"] == sorted(booking.slots.values_list("gpu__index", flat=True))
    assert data["url"] == f"/s/{data['id']}/"
    assert data["image"]["kind"] == "jupyter"
    assert 0 < data["seconds_left"] <= 3600
    job = Job.objects.get(pk=data["job"])
    assert job.owner == bob.user
    assert job.env["KARIMASU_BASE_URL"] == f"/s/{data['id']}/"
    assert job.env["GREETING"] == "hi"
    assert job.preemptible is False
    assert job.events.last().reason == "session"


def test_only_the_holder_starts_a_session_on_a_booking(
    alice, bob, charlie, nodes, unlimited, workspace
) -> None:
    booking = borrow(bob)
    assert_error(start(alice, booking["id"]), 403, "permission_denied")  # team lead
    assert_error(start(charlie, booking["id"]), 403, "permission_denied")
    assert not Session.objects.exists()


def test_bad_inputs_are_4xx(bob, nodes, unlimited, workspace) -> None:
    booking = borrow(bob)
    assert_error(start(bob, booking["id"], image="nope"), 400, "invalid")
    assert_error(start(bob, 999999), 404)
    response = bob.client().post("/api/v1/sessions/", {"reservation": "x"}, format="json")
    assert_error(response, 400, "invalid")
    WorkspaceImage.objects.update(enabled=False)
    assert_error(start(bob, booking["id"]), 400, "invalid")


def test_one_live_session_per_booking(bob, bobs_session) -> None:
    assert_error(start(bob, bobs_session["reservation"]), 409, "session_exists")


def test_a_booking_that_has_not_begun_cannot_start_a_session(bob, nodes, unlimited, workspace):
    now = timezone.now()
    response = bob.client().post(
        "/api/v1/reservations/",
        {
            "team": "vision",
            "node": "tesla-01",
            "gpus": [0],
            "start": (now + timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=2)).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert_error(start(bob, response.json()["id"]), 409, "not_now")


def test_who_sees_and_stops_a_session(alice, bob, charlie, admin, bobs_session) -> None:
    path = f"/api/v1/sessions/{bobs_session['id']}/"
    assert bob.client().get(path).status_code == 200
    assert alice.client().get(path).status_code == 200  # vision's lead
    assert_error(charlie.client().get(path), 404)
    assert admin.client().get(path).status_code == 200
    assert [s["id"] for s in bob.client().get("/api/v1/sessions/").json()["results"]] == [
        bobs_session["id"]
    ]
    assert charlie.client().get("/api/v1/sessions/").json()["results"] == []
    assert_error(charlie.client().post(f"{path}stop/"), 404)


def test_stop_cancels_the_job(bob, bobs_session) -> None:
    response = bob.client().post(f"/api/v1/sessions/{bobs_session['id']}/stop/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "stopped"
    assert response.json()["stop_reason"] == "stopped"
    assert Job.objects.get(pk=bobs_session["job"]).status == states.CANCELLED
    # stopping twice is fine, and the booking is free for a new session
    assert bob.client().post(f"/api/v1/sessions/{bobs_session['id']}/stop/").status_code == 200
    assert start(bob, bobs_session["reservation"]).status_code == 201


def test_extend_moves_the_bookings_end(bob, bobs_session) -> None:
    before = Reservation.objects.get(pk=bobs_session["reservation"]).end
    response = bob.client().post(
        f"/api/v1/sessions/{bobs_session['id']}/extend/", {"minutes": 30}, format="json"
    )
    assert response.status_code == 200, response.content
    after = Reservation.objects.get(pk=bobs_session["reservation"]).end
    assert after - before == timedelta(minutes=30)
    job = Job.objects.get(pk=bobs_session["job"])
    assert job.holds_gpus_until(timezone.now()) >= after  # the board and bookings agree
    bad = bob.client().post(
        f"/api/v1/sessions/{bobs_session['id']}/extend/", {"minutes": 0}, format="json"
    )
    assert_error(bad, 400, "invalid")


def _never_idle(*_args) -> bool:
    return False


def _lifecycle(now, is_idle=_never_idle, last_activity=lambda s: None):
    return sessions.run_lifecycle(now=now, is_idle=is_idle, last_activity=last_activity)


def test_warnings_at_15_and_5_minutes_then_stop_at_the_end(
    bob, bobs_session, django_capture_on_commit_callbacks, eager_tasks
) -> None:
    end = Reservation.objects.get(pk=bobs_session["reservation"]).end
    sid = bobs_session["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert _lifecycle(end - timedelta(minutes=20)).warned == []
        assert _lifecycle(end - timedelta(minutes=14)).warned == [(sid, 15)]
        assert _lifecycle(end - timedelta(minutes=13)).warned == []  # once
        assert _lifecycle(end - timedelta(minutes=4)).warned == [(sid, 5)]
        assert _lifecycle(end - timedelta(minutes=3)).warned == []
    assert len(mail.outbox) == 2
    assert "stops in 15 minutes" in mail.outbox[0].body
    assert f"/sessions/{sid}/" in mail.outbox[0].body
    assert Job.objects.get(pk=bobs_session["job"]).status == states.ADMITTED

    with django_capture_on_commit_callbacks(execute=False):
        report = _lifecycle(end + timedelta(seconds=1))
    assert report.stopped == [sid]
    session = Session.objects.get(pk=sid)
    assert session.stop_reason == "booking_ended"
    assert session.job.status == states.CANCELLED
    assert "booking ended" in session.job.message


def test_an_extension_warns_again_before_the_new_end(
    bob, bobs_session, django_capture_on_commit_callbacks
) -> None:
    sid = bobs_session["id"]
    booking = Reservation.objects.get(pk=bobs_session["reservation"])
    with django_capture_on_commit_callbacks(execute=False):
        assert _lifecycle(booking.end - timedelta(minutes=4)).warned == [(sid, 5)]
    Reservation.objects.filter(pk=booking.pk).update(end=booking.end + timedelta(minutes=30))
    new_end = booking.end + timedelta(minutes=30)
    with django_capture_on_commit_callbacks(execute=False):
        assert _lifecycle(new_end - timedelta(minutes=10)).warned == [(sid, 15)]


def test_a_released_booking_stops_its_session(
    bob, bobs_session, django_capture_on_commit_callbacks
) -> None:
    response = bob.client().post(f"/api/v1/reservations/{bobs_session['reservation']}/release/")
    assert response.status_code == 200, response.content
    with django_capture_on_commit_callbacks(execute=False):
        assert _lifecycle(timezone.now()).stopped == [bobs_session["id"]]


def test_idle_culling_needs_both_signals(
    bob, bobs_session, settings, django_capture_on_commit_callbacks
) -> None:
    settings.KARIMASU_SESSION_IDLE_MINUTES = 30
    job = Job.objects.get(pk=bobs_session["job"])
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=states.RUNNING, started_at=now - timedelta(hours=1))
    end = Reservation.objects.get(pk=bobs_session["reservation"]).end
    Reservation.objects.filter(pk=bobs_session["reservation"]).update(end=end + timedelta(hours=2))
    recent, old = now - timedelta(minutes=5), now - timedelta(minutes=45)

    def idle(*_args) -> bool:
        return True

    with django_capture_on_commit_callbacks(execute=False):
        assert _lifecycle(now, idle, lambda s: recent).culled == []  # the workspace is used
        assert _lifecycle(now, _never_idle, lambda s: old).culled == []  # the GPUs are used
        assert _lifecycle(now, idle, lambda s: None).culled == []  # the workspace cannot say
        assert _lifecycle(now, idle, lambda s: old).culled == [bobs_session["id"]]
    assert Session.objects.get(pk=bobs_session["id"]).stop_reason == "idle"


def test_workspace_images_are_listed(bob, workspace) -> None:
    response = bob.client().get("/api/v1/workspace-images/")
    assert response.status_code == 200
    assert [i["name"] for i in response.json()] == ["stand-in"]


def _browser(persona):
    from django.test import Client

    client = Client()
    client.force_login(persona.user)
    return client


def test_the_pages_start_show_extend_and_stop_a_session(
    bob, charlie, nodes, unlimited, workspace, django_capture_on_commit_callbacks
) -> None:
    booking = borrow(bob)
    page = _browser(bob).get(f"/sessions/?reservation={booking['id']}")
    assert page.status_code == 200
    assert f'value="{booking["id"]}" selected' in page.content.decode()
    assert "Start session" in _browser(bob).get("/bookings/").content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = _browser(bob).post(
            "/sessions/", {"reservation": booking["id"], "image": "stand-in"}
        )
    session = Session.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/sessions/{session.pk}/"
    html = _browser(bob).get(f"/sessions/{session.pk}/").content.decode()
    assert f'href="/s/{session.pk}/"' in html
    assert "tesla-01" in html or "tesla-02" in html or "a100-01" in html
    assert "minutes left" in html
    assert _browser(charlie).get(f"/sessions/{session.pk}/").status_code == 404
    _browser(bob).post(f"/sessions/{session.pk}/", {"action": "extend", "minutes": "30"})
    assert Reservation.objects.get(pk=booking["id"]).end > timezone.now() + timedelta(minutes=80)
    with django_capture_on_commit_callbacks(execute=False):
        _browser(bob).post(f"/sessions/{session.pk}/", {"action": "stop"})
    assert Job.objects.get(pk=session.job_id).status == states.CANCELLED
    html = _browser(bob).get(f"/sessions/{session.pk}/").content.decode()
    assert f'href="/s/{session.pk}/"' not in html
    # a refusal is a message, not an error page
    response = _browser(bob).post("/sessions/", {"reservation": "x", "image": "stand-in"})
    assert response.status_code == 302


@pytest.mark.parametrize(
    "mounts", [[{"name": ["x"]}], [{"name": "data", "write": "yes"}], [42], [{"evil": 1}], "x"]
)
def test_malformed_mounts_are_400(bob, nodes, unlimited, workspace, mounts) -> None:
    booking = borrow(bob)
    response = bob.client().post(
        "/api/v1/sessions/",
        {"reservation": booking["id"], "image": "stand-in", "mounts": mounts},
        format="json",
    )
    assert_error(response, 400, "invalid")


def test_an_unknown_mount_is_400(bob, nodes, unlimited, workspace) -> None:
    booking = borrow(bob)
    response = bob.client().post(
        "/api/v1/sessions/",
        {"reservation": booking["id"], "image": "stand-in", "mounts": ["nope"]},
        format="json",
    )
    assert_error(response, 400, "invalid")
    assert not Session.objects.exists()


#: persona -> (API view, API extend, may open /s/<id>/): the session's part of the access
#: table (bob owns it; dave is another member of vision; alice leads vision).
SESSION_TABLE = {
    "bob": (200, 200, True),
    "alice": (200, 200, False),
    "dave": (404, 404, False),
    "charlie": (404, 404, False),
    "admin": (200, 200, False),
}


def test_the_sessions_access_table(alice, bob, charlie, admin, vision, bobs_session) -> None:
    from portal.accounts.models import Membership
    from scheduler.services import access
    from tests.conftest import make_persona

    dave = make_persona("dave")
    Membership.objects.create(team=vision, user=dave.user, role=Membership.Role.MEMBER)
    people = {"bob": bob, "alice": alice, "dave": dave, "charlie": charlie, "admin": admin}
    session = Session.objects.get(pk=bobs_session["id"])
    path = f"/api/v1/sessions/{session.pk}/"
    for name, (view, extend, opens) in SESSION_TABLE.items():
        client = people[name].client()
        assert client.get(path).status_code == view, name
        response = client.post(f"{path}extend/", {"minutes": 1}, format="json")
        assert response.status_code == extend, (name, response.content)
        assert access.can_open_session(people[name].user, session) is opens, name
