"""Pages that update themselves (issue 18, items 2 and 5): a job's state changes while its
page is open, the log opens at its newest lines and follows, failing jobs look failing,
cancelling asks first, and the job page works on a 390 px wide phone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from scheduler import tasks, views
from scheduler.models import Job, PriorityClass
from scheduler.services import submission
from tests.scheduler.conftest import make_node

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Waits (not speed limits): a few poll periods of live.js, so a slow machine still passes.
POLLS = 20_000


@pytest.fixture
def job(alice, monkeypatch) -> Job:
    monkeypatch.setattr(tasks.schedule_cycle, "delay", lambda: None)  # no worker here
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    make_node("tesla-01")
    request = submission.JobRequest(
        name="resnet", image="pytorch/pytorch:2.4", team="vision", max_runtime_s=14400
    )
    return submission.submit_job(alice.user, request, now=timezone.now())


def _mark_page(page) -> None:
    """A mark a reload would wipe: its presence later proves the page was not reloaded."""
    page.evaluate("window.__notReloaded = true")


def _not_reloaded(page) -> bool:
    return page.evaluate("window.__notReloaded === true")


def test_the_job_page_shows_a_status_change_without_a_reload(page, sign_in, alice, job) -> None:
    sign_in(alice)
    page.goto(f"/jobs/{job.pk}/")
    status = page.locator("h2 .status")
    expect(status).to_have_attribute("data-status", "queued")
    assert "4 h" in page.locator(".estimate").inner_text()  # not "14400 s"
    _mark_page(page)

    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status="running", reason="", message="", started_at=now - timedelta(minutes=80)
    )
    expect(status).to_have_attribute("data-status", "running", timeout=POLLS)
    expect(status).to_have_text("Running")
    expect(page.locator(".estimate")).to_contain_text("1 h 20 min")
    assert _not_reloaded(page)


def test_the_job_list_and_dashboard_refresh(page, sign_in, alice, job) -> None:
    sign_in(alice)
    for url in ("/jobs/", "/"):
        Job.objects.filter(pk=job.pk).update(status="queued", reason="capacity")
        page.goto(url)
        row_status = page.locator(f'tr:has(a[href="/jobs/{job.pk}/"]) .status')
        expect(row_status).to_have_attribute("data-status", "queued")
        _mark_page(page)
        Job.objects.filter(pk=job.pk).update(status="succeeded", reason="")
        expect(row_status).to_have_attribute("data-status", "succeeded", timeout=POLLS)
        assert _not_reloaded(page)


def test_a_job_that_cannot_pull_its_image_looks_failing(page, sign_in, alice, job) -> None:
    raw = 'Back-off pulling image "pytorch/pytorch:nope" (ImagePullBackOff: rpc error: not found)'
    Job.objects.filter(pk=job.pk).update(
        status="starting", reason="image_pull_failure", message=raw
    )
    sign_in(alice)
    page.goto(f"/jobs/{job.pk}/")
    status = page.locator("h2 .status")
    expect(status).to_have_class("status starting tone-warn")
    color = status.evaluate("element => getComputedStyle(element).color")
    assert color != "rgb(47, 111, 222)"  # not the healthy "starting" blue
    expect(page.locator("p.reason")).to_contain_text("The image cannot be pulled")
    raw_text = page.locator("details.raw pre").first
    expect(raw_text).to_be_hidden()  # the cluster's own words only on demand
    page.locator("details.raw summary").first.click()
    expect(raw_text).to_contain_text("ImagePullBackOff")


class _FakeCluster:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def logs(self, job_id, attempt, *, tail_lines=None, follow=False):
        return list(self.lines[-tail_lines:] if tail_lines else self.lines)


def test_the_log_opens_at_its_tail_loads_earlier_lines_and_follows(
    page, sign_in, alice, job, monkeypatch
) -> None:
    cluster = _FakeCluster([f"line {i}" for i in range(1, 501)])
    monkeypatch.setattr(views, "cluster_backend", lambda: cluster)
    Job.objects.filter(pk=job.pk).update(status="running", started_at=timezone.now())
    sign_in(alice)
    page.goto(f"/jobs/{job.pk}/")
    log = page.locator("#log-text")
    expect(log).to_contain_text("line 500")
    text = log.inner_text()
    assert text.splitlines()[0] == "line 301"  # the last 200 lines
    at_bottom = "e => e.scrollHeight - e.scrollTop - e.clientHeight < 4"
    page.wait_for_function(f"({at_bottom})(document.getElementById('log-text'))")

    page.get_by_role("button", name="Load earlier lines").click()
    expect(log).to_contain_text("line 101")
    assert log.inner_text().splitlines()[0] == "line 101"

    cluster.lines.append("line 501: epoch 3 done")
    expect(log).to_contain_text("line 501: epoch 3 done", timeout=POLLS)


def test_cancel_asks_first_and_the_page_fits_a_phone(page, sign_in, alice, job) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(alice)
    page.goto(f"/jobs/{job.pk}/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at 390 px ({width} px wide)"
    cancel = page.get_by_role("button", name="Cancel job")
    expect(cancel).to_be_in_viewport()

    page.once("dialog", lambda dialog: dialog.dismiss())
    cancel.click()
    expect(page.locator("h2 .status")).to_have_attribute("data-status", "queued")
    job.refresh_from_db()
    assert job.status == "queued"

    page.once("dialog", lambda dialog: dialog.accept())
    cancel.click()
    expect(page.locator("h2 .status")).to_have_attribute("data-status", "cancelled")
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_the_bookings_page_shows_a_new_booking_without_a_reload(
    page, sign_in, alice, bob, vision, job, monkeypatch
) -> None:
    from scheduler.models import Node
    from scheduler.services import reservations

    monkeypatch.setattr(tasks.notify_reservation, "delay", lambda *args: None)
    sign_in(alice)
    page.goto("/bookings/")
    expect(page.locator(".bar")).to_have_count(0)
    _mark_page(page)

    now = timezone.now()
    reservations.reserve_gpus(  # a teammate books from elsewhere (the API, another tab)
        bob.user,
        team=vision,
        node=Node.objects.get(name="tesla-01"),
        gpu_indices=[1],
        start=now,  # from now: on this week's calendar whatever the day
        end=now + timedelta(hours=1),
        now=now,
    )
    expect(page.locator(".bar.team")).to_have_count(1, timeout=POLLS)
    assert _not_reloaded(page)


@pytest.mark.parametrize("url", ["/", "/jobs/", "/bookings/", "/sql/", "/accounts/tokens/"])
def test_pages_fit_a_phone(page, sign_in, alice, job, url) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(alice)
    page.goto(url)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{url} scrolls sideways at 390 px ({width} px wide)"
