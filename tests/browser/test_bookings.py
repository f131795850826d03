"""A researcher borrows a GPU from the bookings page, sees it on the week's calendar, and
gives it back."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from scheduler import tasks
from scheduler.models import Reservation
from tests.scheduler.conftest import make_node

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_borrow_see_it_on_the_calendar_and_give_it_back(
    page, live_server, sign_in, alice, vision, monkeypatch
) -> None:
    monkeypatch.setattr(tasks.schedule_cycle, "delay", lambda: None)  # no worker here
    make_node("tesla-01")
    make_node("a100-01", 4, "NVIDIA-A100-SXM4-80GB")
    sign_in(alice)

    page.goto("/")
    page.get_by_role("link", name="Bookings").click()
    expect(page.locator("[data-gpu]")).to_have_count(6)  # the timeline's rows
    assert page.locator(".bar").count() == 0

    page.fill("#id_borrow-gpus", "2")
    page.fill("#id_borrow-hours", "3")
    page.fill("#id_borrow-purpose", "ablation study")
    page.get_by_role("button", name="Borrow", exact=True).click()
    assert "Borrowed: tesla-01 GPU 0, 1" in page.locator(".messages").inner_text()
    bars = page.locator(".vis-item.bar.mine")
    expect(bars).to_have_count(2)  # best fit: both GPUs of the small node, not half the A100s
    # The label names holder, time and GPUs (a few hours in a week's width clip it; the
    # click below opens the same details in full).
    assert "alice" in bars.first.text_content() and "2 × GPU" in bars.first.text_content()
    expect(page.locator(".vis-current-time")).to_have_count(1)
    bars.first.click()  # details on click, not hover only
    expect(page.locator("#calendar-details")).to_contain_text("ablation study")

    # Giving back asks first (app.js, data-confirm): dismissed, nothing happens.
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Give back").click()
    assert questions and "Give these GPUs back now?" in questions[0]
    assert Reservation.objects.get().status != "released"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Give back").click()
    assert "Gave back" in page.locator(".messages").inner_text()
    expect(page.locator(".vis-item.bar.mine")).to_have_count(0)
    expect(page.locator(".vis-item.bar.ended")).to_have_count(2)
    assert Reservation.objects.get().status == "released"
