"""Admin screens of the scheduler: kill jobs and give bookings back through the services,
and settings (quotas, policies, priority classes, maintenance) that ask for a cycle."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from scheduler.models import Job, Reservation, TeamQuota
from scheduler.services import reservations, submission

pytestmark = pytest.mark.django_db


def _admin_client(admin) -> Client:
    """The admin site's permissions are Django's: a site admin is a superuser (as
    ``createsuperuser`` and the demo's admin are)."""
    admin.user.is_superuser = True
    admin.user.save(update_fields=["is_superuser"])
    client = Client()
    client.force_login(admin.user)
    return client


def _job(persona, team: str) -> Job:
    request = submission.JobRequest(
        name="resnet", image="pytorch/pytorch:2.4", team=team, max_runtime_s=600
    )
    return submission.submit_job(persona.user, request, now=timezone.now())


def test_an_admin_kills_jobs_from_the_list(admin, alice, nodes) -> None:
    queued = _job(alice, "vision")
    done = _job(alice, "vision")
    submission.cancel_job(alice.user, done, now=timezone.now())
    client = _admin_client(admin)
    selected = {"action": "kill", "_selected_action": [queued.pk, done.pk]}
    # First the confirmation page, asking for a reason: nothing is killed yet.
    confirm = client.post("/admin/scheduler/job/", selected)
    assert confirm.status_code == 200
    assert 'name="reason"' in confirm.content.decode()
    queued.refresh_from_db()
    assert queued.status == "queued"
    # Without a reason it asks again.
    again = client.post("/admin/scheduler/job/", {**selected, "confirm": "yes", "reason": " "})
    assert again.status_code == 200 and "errorlist" in again.content.decode()
    queued.refresh_from_db()
    assert queued.status == "queued"
    response = client.post(
        "/admin/scheduler/job/",
        {**selected, "confirm": "yes", "reason": "hogs the A100s"},
        follow=True,
    )
    assert "Killed 1 job(s)." in response.content.decode()
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert queued.events.get(to_status="cancelled").message == "Cancelled by admin: hogs the A100s"


def test_an_admin_gives_bookings_back(admin, alice, vision, nodes, unlimited) -> None:
    now = timezone.now()
    live = reservations.reserve_gpus(
        alice.user,
        team=vision,
        node=nodes["tesla-01"],
        gpu_indices=[0],
        start=now,
        end=now + timedelta(hours=2),
        now=now,
    )
    future = reservations.reserve_gpus(
        alice.user,
        team=vision,
        node=nodes["tesla-02"],
        gpu_indices=[0],
        start=now + timedelta(days=1),
        end=now + timedelta(days=1, hours=2),
        now=now,
    )
    response = _admin_client(admin).post(
        "/admin/scheduler/reservation/",
        {"action": "give_back", "_selected_action": [live.pk, future.pk]},
        follow=True,
    )
    assert "Gave back 2 booking(s)." in response.content.decode()
    assert Reservation.objects.get(pk=live.pk).status == "released"
    assert Reservation.objects.get(pk=future.pk).status == "cancelled"


def test_jobs_and_bookings_cannot_be_added_or_edited_around_the_services(admin) -> None:
    client = _admin_client(admin)
    assert client.get("/admin/scheduler/job/add/").status_code == 403
    assert client.get("/admin/scheduler/reservation/add/").status_code == 403


def test_a_quota_saved_in_the_admin_asks_for_a_cycle(
    admin, vision, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    from scheduler import tasks

    cycles: list[bool] = []
    monkeypatch.setattr(tasks.schedule_cycle, "delay", lambda: cycles.append(True))
    quota = TeamQuota.objects.create(team=vision)
    with django_capture_on_commit_callbacks(execute=True):
        response = _admin_client(admin).post(
            f"/admin/scheduler/teamquota/{quota.pk}/change/",
            {
                "team": vision.pk,
                "guaranteed_gpus": "4",
                "borrowing_allowed": "on",
                "borrowing_limit": "",
                "share_weight": "2.0",
                "user_gpu_cap": "",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    quota.refresh_from_db()
    assert (quota.guaranteed_gpus, quota.share_weight) == (4, 2.0)
    assert cycles == [True]


def test_the_settings_screens_are_there(admin) -> None:
    client = _admin_client(admin)
    for model in ("priorityclass", "teamquota", "teampolicy", "maintenancewindow", "sweep"):
        assert client.get(f"/admin/scheduler/{model}/").status_code == 200, model
