"""A session end to end on the emulator (issue 16): borrow, start, the workspace runs as a
real process, the portal (uvicorn, portal.asgi) reaches its page and WebSocket through the
emulator's pod proxy, its activity is read for the culler, the booking ends, the session
is stopped and its process is gone."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from websockets.asyncio.client import connect

from scheduler import states
from scheduler.cluster.kube import KubernetesBackend
from scheduler.cluster.podproxy import workspace_last_activity
from scheduler.models import Job, Reservation, Session, WorkspaceImage
from scheduler.services import sessions
from scheduler.services.availability import borrow_now
from scheduler.services.inventory import sync_inventory
from tests.scheduler.sessions_upstream import one_node_cluster, serve_portal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live_cluster(settings):
    with one_node_cluster(settings) as handle:
        yield handle


@pytest.fixture
def portal(live_cluster):
    with serve_portal() as url:
        yield url


def _wait(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_borrow_start_open_websocket_booking_ends_stopped(
    live_cluster, portal, bob, unlimited, django_capture_on_commit_callbacks
) -> None:
    backend = KubernetesBackend.from_kubeconfig(str(live_cluster.kubeconfig_path))
    sync_inventory(backend, now=timezone.now())
    workspace = WorkspaceImage.objects.create(
        name="stand-in", image="karimasu/workspace:demo", port=8888
    )
    booking = borrow_now(
        bob.user,
        team=bob.user.memberships.get().team,
        gpus=1,
        model=None,
        hours=1,
        now=timezone.now(),
    )
    with django_capture_on_commit_callbacks(execute=False):
        session = sessions.start_session(
            bob.user, reservation=booking, workspace=workspace, now=timezone.now()
        )
    assert sessions.submit_admitted(backend, session.job_id, now=timezone.now())

    client = Client()
    client.force_login(bob.user)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    url = f"{portal}/s/{session.pk}/"

    def page() -> httpx.Response | None:
        response = httpx.get(url, cookies=cookies, timeout=10)
        return response if response.status_code == 200 else None

    response = _wait(page)
    assert "Karimasu workspace" in response.text
    assert "KARIMASU_BASE_URL" in response.text

    async def echo() -> str:
        async with connect(
            f"{portal.replace('http', 'ws')}/s/{session.pk}/ws/echo",
            origin=portal,
            additional_headers={"Cookie": f"sessionid={cookies['sessionid']}"},
            open_timeout=10,
        ) as ws:
            await ws.send("hello workspace")
            return str(await ws.recv())

    assert "hello workspace" in asyncio.run(echo())
    activity = workspace_last_activity(session.job_id, 1, 8888, session.path)
    assert activity is not None and abs(activity - timezone.now()) < timedelta(minutes=5)

    # the booking ends: the lifecycle pass stops the session and its pod goes
    Reservation.objects.filter(pk=booking.pk).update(end=timezone.now() + timedelta(seconds=1))
    time.sleep(1.1)
    with django_capture_on_commit_callbacks(execute=False):
        report = sessions.run_lifecycle(
            now=timezone.now(), is_idle=lambda *a: False, last_activity=lambda s: None
        )
    assert report.stopped == [session.pk]
    assert Job.objects.get(pk=session.job_id).status == states.CANCELLED
    backend.cancel(session.job_id, 1)
    assert httpx.get(url, cookies=cookies, timeout=10).status_code == 409
    _wait(lambda: backend.status(session.job_id, 1) is None)


def test_on_demand_queued_placed_by_a_cycle_opened_by_its_owner_only_time_up(
    live_cluster, portal, alice, bob, django_capture_on_commit_callbacks
) -> None:
    """No booking: the session's job is queued (the proxy says 503), a cycle places it on
    the emulated node, reconcile sees it running, only its owner gets in (403 otherwise),
    extend patches the cluster Job's deadline, and at the end of its duration it stops."""
    from scheduler.services.cycle import run_cycle
    from scheduler.services.reconcile import reconcile

    backend = KubernetesBackend.from_kubeconfig(str(live_cluster.kubeconfig_path))
    sync_inventory(backend, now=timezone.now())
    workspace = WorkspaceImage.objects.create(
        name="stand-in", image="karimasu/workspace:demo", port=8888
    )
    from scheduler.models import PriorityClass

    # transactional tests flush the migrations' rows: the default class the submission needs
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    with django_capture_on_commit_callbacks(execute=False):
        session = sessions.start_ondemand_session(
            bob.user, team="vision", workspace=workspace, gpus=1, hours=1, now=timezone.now()
        )
    assert sessions.state(session) == "queued"

    def cookies_of(user) -> dict[str, str]:
        client = Client()
        client.force_login(user)
        return {"sessionid": client.cookies["sessionid"].value}

    url = f"{portal}/s/{session.pk}/"
    bobs = cookies_of(bob.user)
    queued = httpx.get(url, cookies=bobs, timeout=10)
    assert queued.status_code == 503 and queued.headers["retry-after"] == "2"

    with django_capture_on_commit_callbacks(execute=False):
        report = run_cycle(backend, now=timezone.now(), foreign_busy=frozenset())
    assert session.job_id in report.admitted

    def page() -> httpx.Response | None:
        response = httpx.get(url, cookies=bobs, timeout=10)
        return response if response.status_code == 200 else None

    assert "Karimasu workspace" in _wait(page).text
    assert httpx.get(url, cookies=cookies_of(alice.user), timeout=10).status_code == 403

    def running() -> bool:
        with django_capture_on_commit_callbacks(execute=False):
            reconcile(backend, now=timezone.now())
        return Job.objects.get(pk=session.job_id).status == states.RUNNING

    _wait(running)
    session.refresh_from_db()
    assert sessions.ends_at(session) is not None
    with django_capture_on_commit_callbacks(execute=False):
        sessions.extend_session(bob.user, session, minutes=10, now=timezone.now())
    assert sessions.sync_deadline(backend, session.job_id)

    end = sessions.ends_at(Session.objects.select_related("job").get(pk=session.pk))
    assert end is not None
    with django_capture_on_commit_callbacks(execute=False):
        report = sessions.run_lifecycle(
            now=end + timedelta(seconds=1), is_idle=lambda *a: False, last_activity=lambda s: None
        )
    assert report.stopped == [session.pk]
    assert Session.objects.get(pk=session.pk).stop_reason == "time_up"
    backend.cancel(session.job_id, 1)
    assert httpx.get(url, cookies=bobs, timeout=10).status_code == 409
    _wait(lambda: backend.status(session.job_id, 1) is None)
