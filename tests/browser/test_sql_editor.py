"""An analyst in the SQL editor (issue 18, item 4): a code editor with SQL highlighting, the
gate's findings marked in the text as they type (underline, gutter, tooltip) and listed
beside it with their fixes, catalog autocomplete, Ctrl+Enter, one row estimate, a warned
query acknowledged with a button, a parse error marked at its line and column, an empty
override justification refused on the page, result pages, charts and downloads, tabs kept
across reloads and recent queries that refresh themselves; in English (alice) and Japanese
(bob), and on a 390 px wide phone."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from querygate import tasks
from querygate.models import Query, Warehouse
from querygate.services import admission
from tests.browser.conftest import SCREENSHOTS as SHOTS  # docs/screenshots/ takes copies

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Waits (not speed limits): the analysis follows 0.4 s after typing; live.js polls every 5 s.
POLLS = 20_000


@pytest.fixture
def editor_page(page, live_server, settings, tmp_path, monkeypatch):
    settings.QUERYGATE_RESULTS_DIR = tmp_path / "results"
    sent: list[int] = []  # no worker here: a query handed to Celery stays queued
    monkeypatch.setattr(tasks.run_query, "delay", lambda query_id: sent.append(query_id))
    page.sent = sent
    return page


def _set_sql(page, sql: str) -> None:
    """Replace the editor's text as a paste would (no autocomplete in the way)."""
    page.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(sql)


def _text(page) -> str:
    return page.evaluate("window.karimasuSqlEditor.getText()")


def test_findings_marks_autocomplete_run_chart_and_cancel(editor_page, sign_in, alice, demo):
    page = editor_page
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(alice)
    page.goto("/sql/")
    assert page.locator("#warehouse").input_value() == "demo"
    expect(page.locator(".cm-editor")).to_be_visible()
    assert page.locator("textarea#sql").is_hidden()  # the code editor took its place

    # 0. The catalog: listed, filtered, and a click inserts a name at the cursor.
    page.locator("#catalog-tables button.insert", has_text="lineitem").wait_for()
    assert page.locator("#catalog-count").inner_text() == "8 tables"
    page.fill("#catalog-filter", "lineit")
    assert page.locator("#catalog-tables > li").count() == 1
    _set_sql(page, "SELECT count(*) FROM ")
    page.locator("#catalog-tables button.insert", has_text="lineitem").click()
    assert _text(page) == "SELECT count(*) FROM lineitem"

    # 1. Autocomplete from the catalog: a table, then its columns after "nation.".
    _set_sql(page, "")
    page.keyboard.type("SELECT * FROM nat")
    option = page.locator(".cm-tooltip-autocomplete li", has_text="nation")
    option.first.wait_for()
    page.wait_for_timeout(150)  # CodeMirror ignores keys for 75 ms after the list opens
    page.keyboard.press("Enter")
    assert _text(page) == "SELECT * FROM nation"
    _set_sql(page, "SELECT nation.n_re FROM nation")
    page.keyboard.press("Control+Home")
    page.keyboard.press("End")
    for _ in range(" FROM nation".__len__()):
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("Control+Space")
    page.locator(".cm-tooltip-autocomplete li", has_text="n_regionkey").first.wait_for()
    page.keyboard.press("Escape")

    # 2. SQL highlighting: keywords are styled tokens, not plain text.
    _set_sql(page, "SELECT count(*)\nFROM lineitem, orders")
    keyword = page.locator(".cm-content span", has_text="SELECT").first
    assert keyword.evaluate("e => getComputedStyle(e).color") != "rgb(29, 35, 48)"

    # 3. A cartesian product: marked in the text (underline, gutter, tooltip) and listed
    #    beside the editor with its fix, in view without scrolling at 1280x800.
    finding = page.locator("#findings li.finding", has_text="cartesian-join")
    finding.wait_for()
    assert "Nothing joins orders to lineitem" in finding.inner_text()
    assert "JOIN orders ON lineitem" in finding.locator(".suggestion").inner_text()
    box = finding.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800, box
    mark = page.locator(".cm-lintRange-warning").first
    expect(mark).to_be_visible()
    assert page.locator(".cm-gutter-lint .cm-lint-marker-warning").count() == 1
    mark.hover()
    expect(page.locator(".cm-tooltip-lint")).to_contain_text("Nothing joins orders to lineitem")
    assert page.locator("#decision").inner_text().startswith("Runs with warnings")
    # One row estimate, saying where it comes from.
    assert page.locator("#estimate dt", has_text="Estimated result rows").count() == 1
    # count(*) returns one row: the gate's estimate says so; the engine's plan (60,175 at
    # its top-most estimated step, the scan) is not shown as a second, different figure.
    assert page.locator("#estimate-rows").inner_text() == "1"
    expect(page.locator("#estimate .estimate-note")).to_have_text(
        "the gate's estimate, from the catalog's statistics"
    )
    assert "60,175" not in page.locator("#estimate").inner_text()
    finding.get_by_role("button", name="line 2, column 16").click()
    expect(page.locator("#cursor")).to_have_text("2:16")

    # 4. A clean query, formatted, run with Ctrl+Enter: rows, a chart and the downloads.
    _set_sql(page, "select n_name, n_regionkey from nation order by n_name")
    page.locator("#decision.allow").wait_for()
    page.locator("#format:not([disabled])").click()
    assert _text(page) == "SELECT\n  n_name,\n  n_regionkey\nFROM nation\nORDER BY\n  n_name"
    page.locator("#decision.allow").wait_for()
    page.locator(".cm-content").click()
    page.keyboard.press("Control+Enter")
    page.locator("#result").wait_for()
    assert page.locator("#status").inner_text().startswith("25 rows in")
    assert page.locator("#rows thead").inner_text().split() == ["n_name", "n_regionkey"]
    assert page.locator("#rows tbody tr").count() == 25
    assert page.locator("#rows tbody tr").first.inner_text().split()[0] == "ALGERIA"
    assert page.locator("#page-info").inner_text() == "Rows 1–25 of 25"
    expect(page.locator("#download-note")).to_contain_text("25 rows")
    expect(page.locator("#download-note")).to_contain_text("10,000")
    href = page.locator("#download-csv").get_attribute("href")
    assert href is not None and href.endswith("/results/?download=csv")
    csv = page.request.get(href)
    assert csv.ok and csv.text().splitlines()[1] == "ALGERIA,0"

    page.get_by_role("tab", name="Chart").click()
    page.wait_for_function(
        "() => window.KarimasuCharts && window.KarimasuCharts.Chart.getChart('chart') && "
        "document.getElementById('chart').width > 0 && "
        "window.KarimasuCharts.Chart.getChart('chart').data.labels.length === 25"
    )
    assert page.locator("#chart-x").input_value() == "0"  # n_name across
    assert page.locator("#chart-y option").all_inner_texts() == ["n_regionkey"]  # numbers up
    page.select_option("#chart-type", "line")
    page.wait_for_function(
        "() => window.KarimasuCharts.Chart.getChart('chart').config.type === 'line'"
    )
    page.screenshot(path=str(SHOTS / "sql-editor-chart-en.png"), full_page=True)
    page.get_by_role("tab", name="Table").click()

    # 5. The warned query asks for an acknowledgement in the page's words, then queues.
    _set_sql(page, "SELECT count(*)\nFROM lineitem, orders")
    page.locator("#decision.warn").wait_for()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("button", name="Run anyway").wait_for()
    status = page.locator("#status").inner_text()
    assert "acknowledge_warnings" not in status and "Run anyway" in status
    assert "cartesian-join" in page.locator("#reasons").inner_text()
    page.screenshot(path=str(SHOTS / "sql-editor-en.png"))
    page.get_by_role("button", name="Run anyway").click()
    page.get_by_role("button", name="Cancel query").wait_for()
    assert page.locator("#status").inner_text() == "Queued…"
    queued = Query.objects.get(pk=page.sent[0])
    assert queued.acknowledged and queued.status == "queued"
    page.get_by_role("button", name="Cancel query").click()
    page.locator("#status.cancelled").wait_for()
    assert "cancelled by its owner" in page.locator("#status").inner_text()
    assert not page.get_by_role("button", name="Cancel query").is_visible()
    queued.refresh_from_db()
    assert queued.status == "cancelled"

    # 6. The recent queries list links back to a query: its SQL and rows come back.
    ran = Query.objects.filter(user=alice.user, status="succeeded").get()
    page.goto("/sql/")
    page.locator(f"#recent a[href='?query={ran.pk}']").click()
    page.locator("#result").wait_for()
    assert _text(page) == ran.sql
    assert page.locator("#rows tbody tr").count() == 25


def test_a_parse_error_is_marked_at_its_line_and_column(editor_page, sign_in, alice, demo):
    page = editor_page
    sign_in(alice)
    page.goto("/sql/")
    _set_sql(page, "SELECT n_name\nFROM nation WHERE")
    finding = page.locator("#findings li.finding", has_text="parse-error")
    finding.wait_for()
    # The WHERE has no condition: the mark is where it must be typed, after "WHERE".
    assert "line 2, column 18" in finding.inner_text()
    # past the line's last character: a point mark (CodeMirror's zero-width diagnostic)
    expect(page.locator(".cm-lintRange-error, .cm-lintPoint-error")).to_have_count(1)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#status")).to_contain_text("line 2, column 18")
    expect(page.locator("#cursor")).to_have_text("2:18")


def test_an_empty_override_justification_says_so(editor_page, sign_in, alice, demo):
    page = editor_page
    Warehouse.objects.filter(pk=demo.pk).update(policy={"max_bytes_scanned": 100})
    sign_in(alice)  # a lead of vision: may override
    page.goto("/sql/")
    _set_sql(page, "SELECT n_name FROM nation")
    page.locator("#decision.reject").wait_for()
    page.get_by_role("button", name="Run", exact=True).click()
    override = page.get_by_role("button", name="Run with override")
    override.wait_for()
    override.click()
    problem = page.locator("#justification-error")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("the justification is required")
    assert Query.objects.filter(user=alice.user).exclude(override_justification="").count() == 0
    page.fill("#justification", "quarterly report, approved by the data owner")
    expect(problem).to_be_hidden()
    override.click()
    page.get_by_role("button", name="Cancel query").wait_for()  # over the limit: queued
    ran = Query.objects.get(pk=page.sent[0])
    assert ran.override_justification == "quarterly report, approved by the data owner"
    assert ran.status == "queued"


def test_tabs_survive_a_reload_and_recent_queries_refresh(editor_page, sign_in, alice, demo):
    page = editor_page
    sign_in(alice)
    page.goto("/sql/")
    _set_sql(page, "SELECT n_name FROM nation")
    page.get_by_role("button", name="New tab").click()
    expect(page.locator("#tabs .tab")).to_have_count(2)
    assert _text(page) == ""
    _set_sql(page, "SELECT r_name FROM region")
    page.reload()
    tabs = page.locator("#tabs .tab-open")
    expect(tabs).to_have_count(2)
    assert _text(page) == "SELECT r_name FROM region"  # the tab that was open
    tabs.first.click()
    assert _text(page) == "SELECT n_name FROM nation"
    page.get_by_role("button", name="Close tab").first.click()
    expect(page.locator("#tabs .tab")).to_have_count(1)
    assert _text(page) == "SELECT r_name FROM region"

    # A query run elsewhere (the API, another tab) shows up without a reload.
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#recent")).to_contain_text("None yet.")
    admission.submit_query(alice.user, "demo", "SELECT 42 AS answer", now=timezone.now())
    expect(page.locator("#recent")).to_contain_text("SELECT 42 AS answer", timeout=POLLS)
    assert page.evaluate("window.__notReloaded === true")


def test_bob_in_japanese_and_on_a_phone(editor_page, sign_in, bob, demo):
    page = editor_page
    bob.user.language = "ja"
    bob.user.save()
    sign_in(bob)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/sql/")
    expect(page.locator("h1")).to_have_text("SQLエディタ")
    _set_sql(page, "SELECT count(*)\nFROM lineitem, orders")
    page.locator("#decision.warn").wait_for()
    expect(page.locator(".cm-lintRange-warning").first).to_be_visible()
    assert page.locator("#estimate dt").first.inner_text() != "Estimated result rows"
    page.locator("#run").click()
    page.locator("#acknowledge").wait_for()
    assert page.locator("#acknowledge").inner_text() != "Run anyway"
    status = page.locator("#status").inner_text()
    assert "acknowledge_warnings" not in status and "This query has warnings" not in status
    page.screenshot(path=str(SHOTS / "sql-editor-ja.png"))

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/sql/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at 390 px ({width} px wide)"
    _set_sql(page, "SELECT n_name, n_regionkey FROM nation ORDER BY n_name")
    page.locator("#decision.allow").wait_for()
    page.locator("#run").click()
    page.locator("#result").wait_for()
    assert page.locator("#rows tbody tr").count() == 25
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the result scrolls the page sideways ({width} px wide)"
    page.locator("#show-chart").click()
    page.wait_for_function(
        "() => window.KarimasuCharts && window.KarimasuCharts.Chart.getChart('chart')"
    )
    page.screenshot(path=str(SHOTS / "sql-editor-ja-390px.png"), full_page=True)


def test_downloads_hold_every_row_past_the_row_cap(editor_page, sign_in, alice, demo):
    """ "Download all": the editor submits with export, so a result past the row cap
    downloads whole and the note says how many rows; past the export cap it says why not."""
    import io

    import pyarrow.ipc

    demo.row_cap = 100
    demo.save()
    page = editor_page
    sign_in(alice)
    page.goto("/sql/")
    _set_sql(page, "SELECT l_orderkey, l_linenumber FROM lineitem")
    page.locator("#decision.allow").wait_for(timeout=POLLS)
    page.locator("#run").click()
    page.locator("#result").wait_for(timeout=POLLS)
    assert page.locator("#page-info").inner_text() == "Rows 1–100 of 100"
    expect(page.locator("#download-note")).to_contain_text("every row of the result: 60,175")
    href = page.locator("#download-arrow").get_attribute("href")
    assert href is not None and href.endswith("/results/?download=arrow")
    answer = page.request.get(href)
    assert answer.ok
    assert pyarrow.ipc.open_stream(io.BytesIO(answer.body())).read_all().num_rows == 60_175

    demo.policy = {"max_export_rows": 1000}
    demo.save()
    _set_sql(page, "SELECT l_orderkey, l_linenumber, l_suppkey FROM lineitem")
    page.locator("#decision.allow").wait_for(timeout=POLLS)
    page.locator("#run").click()
    expect(page.locator("#download-note")).to_contain_text("export cap of 1,000", timeout=POLLS)
    expect(page.locator("#download-note")).to_contain_text("first 100 rows")
