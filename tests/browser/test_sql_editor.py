"""An analyst in the SQL editor: the gate's findings appear as they type and point into the
SQL; a clean query runs and pages; a warned one runs once acknowledged; a queued one is
cancelled from the page."""

from __future__ import annotations

import pytest

from querygate import tasks
from querygate.models import Query

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _type(page, sql: str) -> None:
    page.fill("#sql", sql)  # fires "input": the analysis follows


def test_findings_as_you_type_run_acknowledge_and_cancel(
    page, live_server, sign_in, alice, demo, settings, tmp_path, monkeypatch
) -> None:
    settings.QUERYGATE_RESULTS_DIR = tmp_path / "results"
    sent: list[int] = []  # no worker here: a query handed to Celery stays queued
    monkeypatch.setattr(tasks.run_query, "delay", lambda query_id: sent.append(query_id))
    sign_in(alice)
    page.goto("/sql/")
    assert page.locator("#warehouse").input_value() == "demo"

    # 0. The catalog: the warehouse's tables, filtered, and a click inserts a name.
    page.locator("#catalog-tables button.insert", has_text="lineitem").wait_for()
    assert page.locator("#catalog-count").inner_text() == "8 tables"
    page.fill("#catalog-filter", "lineit")
    assert page.locator("#catalog-tables > li").count() == 1
    _type(page, "SELECT count(*) FROM ")
    page.locator("#catalog-tables button.insert", has_text="lineitem").click()
    assert page.locator("#sql").input_value() == "SELECT count(*) FROM lineitem"

    # 1. A cartesian product: the finding says where, and its position moves the cursor.
    _type(page, "SELECT count(*)\nFROM lineitem, orders")
    finding = page.locator("#findings li.finding", has_text="cartesian-join")
    finding.wait_for()
    assert "Nothing joins orders to lineitem" in finding.inner_text()
    assert "JOIN orders ON lineitem" in finding.locator(".suggestion").inner_text()
    assert page.locator("#decision").inner_text().startswith("Runs with warnings")
    assert page.locator("#estimate").is_visible()
    finding.get_by_role("button", name="line 2, column 16").click()
    assert page.locator("#cursor").inner_text() == "2:16"

    # 2. A clean query, formatted: allowed, runs inline, its rows are shown and downloaded.
    _type(page, "select n_name, n_regionkey from nation order by n_name")
    page.locator("#decision.allow").wait_for()
    page.locator("#format:not([disabled])").click()
    assert page.locator("#sql").input_value() == (
        "SELECT\n  n_name,\n  n_regionkey\nFROM nation\nORDER BY\n  n_name"
    )
    page.locator("#decision.allow").wait_for()
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("#result").wait_for()
    assert page.locator("#status").inner_text().startswith("25 rows in")
    assert page.locator("#rows thead").inner_text().split() == ["n_name", "n_regionkey"]
    assert page.locator("#rows tbody tr").count() == 25
    assert page.locator("#rows tbody tr").first.inner_text().split()[0] == "ALGERIA"
    assert page.locator("#page-info").inner_text() == "Rows 1–25 of 25"
    assert page.locator("#next").is_disabled()
    href = page.locator("#download-csv").get_attribute("href")
    assert href is not None and href.endswith("/results/?download=csv")
    csv = page.request.get(href)
    assert csv.ok and csv.text().splitlines()[1] == "ALGERIA,0"

    # 3. The warned query asks for an acknowledgement, then goes to the queue; cancel it.
    _type(page, "SELECT count(*)\nFROM lineitem, orders")
    page.locator("#decision.warn").wait_for()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("button", name="Run anyway").wait_for()
    assert "cartesian-join" in page.locator("#reasons").inner_text()
    page.get_by_role("button", name="Run anyway").click()
    page.get_by_role("button", name="Cancel query").wait_for()
    assert page.locator("#status").inner_text() == "Queued…"
    queued = Query.objects.get(pk=sent[0])
    assert queued.acknowledged and queued.status == "queued"
    page.get_by_role("button", name="Cancel query").click()
    page.locator("#status.cancelled").wait_for()
    assert "cancelled by its owner" in page.locator("#status").inner_text()
    assert not page.get_by_role("button", name="Cancel query").is_visible()
    queued.refresh_from_db()
    assert queued.status == "cancelled"

    # 4. The recent queries list links back to a query: its SQL and rows come back.
    page.goto("/sql/")
    ran = Query.objects.filter(user=alice.user, status="succeeded").get()
    page.locator(f"#recent a[href='?query={ran.pk}']").click()
    page.locator("#result").wait_for()
    assert page.locator("#sql").input_value() == ran.sql
    assert page.locator("#rows tbody tr").count() == 25
