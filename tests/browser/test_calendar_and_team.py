"""Issue #18 items 3 and 6 in the browser: the bookings calendar (rolling from today, a
running job drawn, click for details, drag to book, a clash explained in Japanese for bob,
the list view at 390 px) and the team page (chart, waiting jobs and why, waste for leads),
as alice (English) and bob (Japanese). Screenshots go to docs/screenshots/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from scheduler import states, tasks
from scheduler.models import Job, QueueOrder, Reservation
from scheduler.services import reservations
from tests.scheduler.conftest import make_node

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def cluster(alice, bob, charlie, vision, nlp, unlimited, monkeypatch):
    """tesla-01 and tesla-02; charlie's job runs on tesla-02 GPU 1; bob waits for 8 GPUs;
    alice booked tesla-01 GPU 0 from tomorrow 10:00 for two hours."""
    monkeypatch.setattr(tasks.schedule_cycle, "delay", lambda: None)
    monkeypatch.setattr(tasks.notify_reservation, "delay", lambda *args: None)
    make_node("tesla-01")
    node2 = make_node("tesla-02")
    now = timezone.now()
    Job.objects.create(
        name="llm-pretrain", owner=charlie.user, team=nlp, image="x", gpus=1,
        max_runtime_s=6 * 3600, status=states.RUNNING, node=node2, gpu_indices=[1],
        submitted_at=now, admitted_at=now - timedelta(hours=1),
        started_at=now - timedelta(hours=1),
    )  # fmt: skip
    huge = Job.objects.create(
        name="huge-sweep", owner=bob.user, team=vision, image="x", gpus=8, max_runtime_s=3600,
        submitted_at=now, reason="no_fit", message="8 GPUs never fit on one node here",
    )  # fmt: skip
    QueueOrder.record(now, [huge.pk], [0])
    tomorrow = timezone.localtime(now + timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    booking = reservations.reserve_gpus(
        alice.user, team=vision, node=node2.__class__.objects.get(name="tesla-01"),
        gpu_indices=[0], start=tomorrow, end=tomorrow + timedelta(hours=2),
        purpose="bert fine-tune", now=now,
    )  # fmt: skip
    return {"booking": booking}


def _row_box(page, gpu: str):
    """The bounding box of a GPU's row in the timeline's item area."""
    label = page.locator(f'.vis-label [data-gpu="{gpu}"]')
    expect(label).to_be_visible()
    label_box = label.bounding_box()
    center = page.locator(".vis-panel.vis-center").bounding_box()
    assert label_box and center
    return {"y": label_box["y"] + label_box["height"] / 2, "x": center["x"], "w": center["width"]}


def _drag(page, y: float, x1: float, x2: float) -> None:
    page.mouse.move(x1, y)
    page.mouse.down()
    page.mouse.move((x1 + x2) / 2, y, steps=4)
    page.mouse.move(x2, y, steps=4)
    page.mouse.up()


def test_alice_sees_the_rolling_calendar_clicks_a_block_and_books_by_dragging(
    page, sign_in, alice, cluster
) -> None:
    sign_in(alice)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/bookings/")
    today = timezone.localtime(timezone.now()).date()
    expect(page.locator("#span-title")).to_contain_text(f"{today:%Y-%m-%d}")  # from today
    expect(page.locator(".vis-label [data-gpu]")).to_have_count(4)
    job = page.locator(".vis-item.bar.job")
    expect(job).to_have_count(1)  # charlie's running job: the GPU does not look free
    expect(page.locator(".vis-current-time")).to_have_count(1)
    mine = page.locator(".vis-item.bar.mine")
    expect(mine).to_have_count(1)
    mine.click()
    details = page.locator("#calendar-details")
    expect(details).to_be_visible()
    expect(details).to_contain_text("bert fine-tune")
    expect(details).to_contain_text("tesla-01 GPU 0")
    assert "/calendar/" in page.locator(".feed-url").input_value()
    page.screenshot(path=str(DOCS / "bookings-en.png"), full_page=True)

    # Drag across tesla-01 GPU 1 in the fourth day: the booking form is filled in.
    row = _row_box(page, "tesla-01/1")
    day = row["w"] / 7
    _drag(page, row["y"], row["x"] + 3.3 * day, row["x"] + 3.6 * day)
    expect(page.locator(".vis-item.bar.draft")).to_have_count(1)
    expect(page.locator("#book-prompt")).to_be_visible()
    assert page.locator("#id_book-node").input_value() == "tesla-01"
    assert page.locator("#id_book-gpus").input_value() == "1"
    start = page.locator("#id_book-start").input_value()
    end = page.locator("#id_book-end").input_value()
    assert start.startswith(f"{today + timedelta(days=3):%Y-%m-%d}") and end > start
    page.fill("#id_book-purpose", "dragged")
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Booked: tesla-01 GPU 1")
    expect(page.locator(".vis-item.bar.mine")).to_have_count(2)
    assert Reservation.objects.filter(purpose="dragged", holder=alice.user).count() == 1


def test_bob_gets_a_clash_in_japanese_and_a_list_on_a_phone(page, sign_in, bob, cluster) -> None:
    bob.user.language = "ja"
    bob.user.save()
    sign_in(bob)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/bookings/")
    team = page.locator(".vis-item.bar.team")  # alice's booking: bob's teammate
    expect(team).to_have_count(1)
    box = team.bounding_box()
    assert box
    row = _row_box(page, "tesla-01/0")
    _drag(page, row["y"], box["x"] - 20, box["x"] + box["width"] + 20)
    assert page.locator("#id_book-node").input_value() == "tesla-01"
    page.get_by_role("button", name="予約する", exact=True).click()
    error = page.locator(".messages .error")
    expect(error).to_contain_text("その GPU はその時間ずっと空いているわけではありません。")
    expect(error).to_contain_text("alice (vision)")
    page.screenshot(path=str(DOCS / "bookings-ja.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.goto("/bookings/")
    expect(page.locator(".calendar")).to_be_hidden()
    expect(page.locator(".agenda-entry.team")).to_have_count(1)
    expect(page.locator(".agenda-entry.job")).to_have_count(1)
    expect(page.locator(".cal-nav")).to_be_visible()
    expect(page.get_by_role("link", name="今日")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(DOCS / "bookings-ja-390px.png"), full_page=True)


def _last_weeks_booking(bob, vision) -> None:
    """Bob held tesla-02 GPU 0 for 3 h last week: 2 h busy at 60 %, 1 h idle."""
    from zoneinfo import ZoneInfo

    from scheduler.models import Gpu, ReservationSlot
    from scheduler.services.booking_policy import week_bounds
    from scheduler.telemetry.models import GpuMinute

    gpu = Gpu.objects.get(node__name="tesla-02", index=0)
    start, _ = week_bounds(timezone.now() - timedelta(days=7), ZoneInfo("UTC"))
    at = start + timedelta(days=1, hours=9)
    booking = Reservation.objects.create(
        holder=bob.user, team=vision, node=gpu.node, start=at, end=at + timedelta(hours=3),
        status="expired", created_at=at, purpose="eval",
    )  # fmt: skip
    ReservationSlot.objects.create(
        reservation=booking, gpu=gpu, start=booking.start, end=booking.end, active=False
    )
    GpuMinute.objects.bulk_create(
        GpuMinute(
            gpu=gpu,
            minute=at + timedelta(minutes=i),
            samples=4,
            utilization_samples=4,
            utilization_sum=4 * (60.0 if i < 120 else 1.0),
        )
        for i in range(180)
    )


def test_the_team_page_as_alice_and_bob(page, sign_in, alice, bob, vision, cluster) -> None:
    _last_weeks_booking(bob, vision)
    sign_in(alice)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/")
    page.get_by_role("link", name="Team", exact=True).click()
    expect(page).to_have_url(f"{page.url.split('/teams/')[0]}/teams/vision/")
    expect(page.locator("#usage-chart")).to_have_attribute("data-drawn", "1")
    expect(page.locator("[data-waiting]")).to_contain_text("no_fit")
    expect(page.locator("[data-waiting]")).to_contain_text("8 GPUs never fit on one node here")
    expect(page.locator('table[data-table="waste"]')).to_be_visible()  # alice leads vision
    expect(page.locator('table[data-table="waste"] tbody tr')).to_have_count(2 * 4)
    last_week = page.locator('table[data-table="weeks"] tbody tr').nth(2)
    expect(last_week).to_contain_text("3.0")  # booked
    expect(last_week).to_contain_text("1.0 (33%)")  # wasted
    page.screenshot(path=str(DOCS / "team-en.png"), full_page=True)

    page.context.clear_cookies()
    bob.user.language = "ja"
    bob.user.save()
    sign_in(bob)
    page.goto("/teams/vision/")
    expect(page.locator("h2#usage-title")).to_have_text("週ごとの予約と使用の GPU 時間")
    expect(page.locator('table[data-table="waste"]')).to_have_count(0)
    expect(page.locator("#usage-chart")).to_have_attribute("data-drawn", "1")
    page.screenshot(path=str(DOCS / "team-ja.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.goto("/teams/vision/")
    expect(page.locator("#usage-chart")).to_have_attribute("data-drawn", "1")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(DOCS / "team-ja-390px.png"), full_page=True)
