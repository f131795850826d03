"""Issue 16 in the browser: borrow GPUs, start a session, open it — the workspace's page
(a real process on the emulated node) loads through the portal and its WebSocket echo
round-trips — then the booking ends and the session is stopped.

The portal is served over ASGI (uvicorn, ``portal.asgi``) against the test database, since
the session proxy needs WebSockets; the cluster is the emulator in real time."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from scheduler import states
from scheduler.cluster.kube import KubernetesBackend
from scheduler.models import Job, Reservation, Session, WorkspaceImage
from scheduler.services import sessions
from scheduler.services.inventory import sync_inventory
from scheduler.services.reconcile import reconcile
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.scheduler.sessions_upstream import one_node_cluster, serve_portal

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def eager_tasks():
    """Celery tasks run inline: the session's submit, the stop's delete (no worker here)."""
    from portal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def cluster(settings):
    with one_node_cluster(settings) as handle:
        yield handle


@pytest.fixture
def asgi_portal(cluster):
    with serve_portal() as url:
        yield url


@pytest.fixture
def browser_page(asgi_portal, monkeypatch):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs it"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-US", base_url=asgi_portal)
        page = context.new_page()
        page.set_default_timeout(20_000)
        # The portal's pages run under its Content-Security-Policy: a violation fails.
        violations: list[str] = []
        context.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        try:
            yield page
            assert violations == [], violations
        finally:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for i, shown in enumerate(context.pages):
                shown.screenshot(path=str(SCREENSHOTS / f"sessions-{i}.png"), full_page=True)
            browser.close()
            connections.close_all()


def test_borrow_start_open_websocket_then_the_booking_ends(
    browser_page, asgi_portal, cluster, bob, unlimited, eager_tasks
) -> None:
    page = browser_page
    backend = KubernetesBackend.from_kubeconfig(str(cluster.kubeconfig_path))
    sync_inventory(backend, now=timezone.now())
    WorkspaceImage.objects.create(
        name="demo-workspace", title="Demo workspace", image="karimasu/demo-workspace:1"
    )
    client = Client()
    client.force_login(bob.user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": asgi_portal,
            }
        ]
    )

    # borrow
    page.goto("/bookings/")
    page.fill("#id_borrow-gpus", "1")
    page.fill("#id_borrow-hours", "1")
    page.get_by_role("button", name="Borrow", exact=True).click()
    assert "Borrowed" in page.locator(".messages").inner_text()

    # start a session from the booking
    page.get_by_role("link", name="Start session").click()
    page.get_by_role("button", name="Start session").click()
    page.wait_for_url(re.compile(r"/sessions/\d+/$"))  # the POST answered with its redirect
    session = Session.objects.get()
    assert page.url.endswith(f"/sessions/{session.pk}/")
    expect(page.locator("main")).to_contain_text("tesla-01")

    # the watcher's work, done here: the pod runs, the page says so
    deadline = time.monotonic() + 20
    while Job.objects.get(pk=session.job_id).status != states.RUNNING:
        assert time.monotonic() < deadline, "the session never ran"
        reconcile(backend, now=timezone.now())
        time.sleep(0.2)
    page.reload()
    assert page.locator("#session-state").get_attribute("data-state") == "running"
    assert "minutes left" in page.locator("#time-left").inner_text()

    # open: the page inside the session loads through the portal, its WebSocket echoes
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open").click()
    workspace = opened.value
    workspace.wait_for_load_state()
    assert workspace.url.endswith(f"/s/{session.pk}/")
    assert workspace.locator("h1").inner_text() == "Karimasu workspace"
    workspace.wait_for_function(
        "document.getElementById('echo').textContent === 'hello from the browser'"
    )

    # the booking ends: the lifecycle pass stops the session, the page says so
    Reservation.objects.filter(pk=session.reservation_id).update(
        end=timezone.now() + timedelta(milliseconds=500)
    )
    time.sleep(0.6)
    report = sessions.run_lifecycle(
        now=timezone.now(), is_idle=lambda *a: False, last_activity=lambda s: None
    )
    assert report.stopped == [session.pk]
    page.reload()
    assert page.locator("#session-state").get_attribute("data-state") == "stopped"
    assert page.get_by_role("link", name="Open").count() == 0
    workspace.reload()
    assert "This session has stopped" in workspace.content()
    deadline = time.monotonic() + 20
    while backend.status(session.job_id, 1) is not None:
        assert time.monotonic() < deadline, "the workspace pod was never deleted"
        time.sleep(0.2)
