"""An engineer submits a training job from the jobs page, follows it, and cancels it."""

from __future__ import annotations

import re

import pytest

from scheduler import tasks
from scheduler.models import Job, PriorityClass
from tests.scheduler.conftest import make_node

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_submit_follow_and_cancel_a_job(page, live_server, sign_in, alice, monkeypatch) -> None:
    monkeypatch.setattr(tasks.schedule_cycle, "delay", lambda: None)  # no worker here
    # A transactional test may run after another one flushed the migrations' default rows.
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    make_node("tesla-01")
    sign_in(alice)

    page.goto("/")
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.fill("#id_job-name", "resnet50")
    page.fill("#id_job-command", "python train.py --epochs 3")
    page.fill("#id_job-gpus", "2")
    page.select_option("#id_job-gpu_models", "Tesla-V100-SXM2-16GB")
    page.fill("#id_job-env", "SEED=1")
    page.get_by_role("button", name="Submit", exact=True).click()

    page.wait_for_url(re.compile(r"/jobs/\d+/$"))  # the POST answered: the job is committed
    job = Job.objects.get()
    assert page.url == f"{live_server.url}/jobs/{job.pk}/"
    assert f"Submitted job {job.pk}." in page.locator(".messages").inner_text()
    assert page.locator("h1").inner_text().startswith("resnet50")
    assert job.gpu_models == ["Tesla-V100-SXM2-16GB"] and job.env == {"SEED": "1"}

    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this job?" (app.js)
    page.get_by_role("button", name="Cancel job").click()
    assert page.locator("h2 .status.cancelled").is_visible()
    assert "Cancelled" in page.locator("#events").inner_text()
    job.refresh_from_db()
    assert job.status == "cancelled"

    page.get_by_role("link", name="← Jobs").click()
    assert "resnet50" in page.locator("#jobs").inner_text()
