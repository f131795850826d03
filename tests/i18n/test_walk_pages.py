"""Issue 18: no English sentence on any page shown to a Japanese user.

Every URL pattern of the portal (read from the URL resolver, so a new page is walked
without touching this file) is fetched as bob, whose saved language is Japanese, with
object ids from a demo-like world (``tests/i18n/conftest.py``): a job of each state, a
booking, a session, a query with findings, a pipeline and its run, a team. Each page's
visible text (``tests/i18n/visible.py``) and its live regions (``?live=1``) must hold no
untranslated catalog entry and no English sentence (``tests/i18n/english.py``).

A pattern whose parameter has no sample value fails the walk by name: give it one in
``SAMPLES``. Patterns the walk does not fetch, and why, are in ``NOT_PAGES``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.i18n import english
from tests.i18n.visible import script_strings, visible_text

pytestmark = pytest.mark.django_db

# Route prefixes that are not pages for a person's eyes.
NOT_PAGES = {
    # The JSON API: its error messages are walked by test_walk_api_errors.py.
    "api/v1/": "API",
    # Machine-readable: OpenAPI schema, health probes, iCalendar feed, a job's log (JSON).
    "api/schema/": "machine-readable",
    "healthz": "machine-readable",
    "readyz": "machine-readable",
    "calendar/": "an iCalendar feed, read by calendar apps",
    "jobs/<int:job_id>/log/": "a job's log as JSON (the job's own output)",
    # Single sign-on hops: redirects to the identity provider (404 without OIDC).
    "oidc/": "redirects to the identity provider",
    # The site admin is for staff; bob (not staff) only ever sees its login page, walked
    # below as "admin/login/" and "admin/".
    "admin/": "staff only",
}
ADMIN_FOR_NON_STAFF = ["/admin/", "/admin/login/"]
# Pages whose query string shows something more: the editor reopening a query (its
# findings, its result), the jobs list filtered to one's own.
WITH_QUERY_STRINGS = ["/sql/?query={query}", "/jobs/?mine=1", "/bookings/?view=list"]


def _routes(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[str]:
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry, route)
        elif isinstance(entry, URLPattern):
            yield route


def _form_posts(world: Any) -> list[tuple[str, dict[str, str]]]:
    """Forms sent with mistakes or refused by the services: the pages that explain why."""
    booking = world.booking
    return [
        ("/jobs/", {
            "job-name": "", "job-team": "vision", "job-image": "", "job-gpus": "x",
            "job-command": "python 'unclosed", "job-env": "JUSTANAME", "job-max_runtime_h": "-1",
        }),
        ("/jobs/", {
            "job-name": "resnet-form", "job-team": "vision", "job-image": "pytorch/pytorch:2.4",
            "job-gpus": "1", "job-max_runtime_h": "1", "job-priority_class": "",
        }),  # not preemptible: for leads only
        ("/bookings/", {
            "action": "book", "book-team": "vision", "book-node": "tesla-01", "book-gpus": "x",
        }),
        ("/bookings/", {
            "action": "book", "book-team": "vision", "book-node": "tesla-01",
            "book-gpus": "2, 3",
            "book-start": f"{booking.start + timedelta(minutes=10):%Y-%m-%dT%H:%M}",
            "book-end": f"{booking.start + timedelta(minutes=70):%Y-%m-%dT%H:%M}",
        }),  # a clash with his own booking
        ("/sessions/", {"reservation": str(booking.pk), "image": "lab-ws"}),  # has one
        ("/sessions/", {
            "mode": "on_demand", "team": "vision", "image": "lab-ws", "gpus": "1",
            "hours": "999",
        }),
        ("/accounts/tokens/", {"name": ""}),
        ("/accounts/tokens/", {"name": "notebook"}),  # the new token, shown once
        ("/accounts/time-zone/", {"time_zone": "Mars/Olympus_Mons", "next": "/bookings/"}),
        (f"/pipeline-runs/{world.run.pk}/", {"action": "cancel"}),  # already ended
    ]  # fmt: skip


def _samples(world: Any) -> dict[str, list[str]]:
    """Values for each route parameter: every object the walk shows."""
    return {
        "job_id": [str(job.pk) for job in world.jobs.values()],
        "session_id": [str(world.session.pk)],
        "pipeline_id": [str(world.pipeline.pk)],
        "run_id": [str(world.run.pk)],
        "slug": ["vision"],
        "token_id": [str(world.token.pk)],
    }


def _urls(world: Any) -> tuple[list[str], list[str]]:
    """(URLs to walk, routes whose parameters have no sample)."""
    samples = _samples(world)
    urls: list[str] = list(ADMIN_FOR_NON_STAFF)
    missing: list[str] = []
    for route in _routes():
        if route.startswith("^") or any(route.startswith(p) for p in NOT_PAGES):
            continue
        names = re.findall(r"<(?:\w+:)?(\w+)>", route)
        unknown = [n for n in names if n not in samples]
        if unknown:
            missing.append(f"{route} (no sample for {', '.join(unknown)})")
            continue
        filled = [route]
        for name in names:
            filled = [
                re.sub(rf"<(?:\w+:)?{name}>", value, url, count=1)
                for url in filled
                for value in samples[name]
            ]
        urls += ["/" + url for url in filled]
    urls += [url.format(query=world.query.pk) for url in WITH_QUERY_STRINGS]
    return urls, missing


def _check_html(where: str, html: str, findings: list[str]) -> None:
    for name, text in script_strings(html):
        for problem in english.problems(text):
            line = f"{where} → {problem} in the script data #{name}  (in {text[:120]!r})"
            if line not in findings:
                findings.append(line)
    blocks, fragments = visible_text(html)
    seen: set[str] = set()
    for text in fragments:
        msgid = english.untranslated_entry(text)
        if msgid is not None and msgid not in seen:
            seen.add(msgid)
            shown = "" if text == msgid else f" (shown as {text!r})"
            findings.append(f"{where} → untranslated catalog entry: {msgid!r}{shown}")
    for block in blocks:
        for sentence in english.english_sentences(block):
            if english.untranslated_entry(block) is not None and block in fragments:
                continue  # reported above as its catalog entry
            line = f"{where} → English: {sentence!r}  (in {block[:120]!r})"
            if line not in findings:
                findings.append(line)


def _walk(client: Client, url: str, findings: list[str]) -> None:
    response = client.get(url, follow=True)
    content_type = response.get("Content-Type", "")
    if content_type.startswith("text/html"):
        _check_html(url, response.content.decode(), findings)
    if response.status_code == 200 and content_type.startswith("text/html"):
        live = client.get(url, {"live": "1"})
        if live.get("Content-Type", "").startswith("application/json"):
            body = live.json()
            for name, region in (body.get("regions") or {}).items():
                html = region.get("html", "") if isinstance(region, dict) else str(region)
                _check_html(f"{url}?live=1 [{name}]", html, findings)


def test_every_page_speaks_japanese_to_bob(world, japanese_bob):
    client = Client()  # no Accept-Language: his saved language decides
    client.force_login(japanese_bob.user)
    urls, missing = _urls(world)
    assert not missing, "routes with no sample value in SAMPLES:\n" + "\n".join(missing)
    findings: list[str] = []
    for url in urls:
        _walk(client, url, findings)
    for url, data in _form_posts(world):
        response = client.post(url, data, follow=True)
        _check_html(f"POST {url} {sorted(data)[:2]}", response.content.decode(), findings)
    # A wrong password on the sign-in page, asked for in Japanese by the browser.
    anonymous = Client(headers={"accept-language": "ja"})
    wrong = anonymous.post("/accounts/login/", {"username": "bob", "password": "nope"})
    _check_html("POST /accounts/login/ (wrong password)", wrong.content.decode(), findings)
    # The error pages: an unknown address (404), a form posted without its CSRF token (403:
    # a page left open across a sign-out), and the 500 page.
    _walk(client, "/no-such-page/", findings)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(japanese_bob.user)
    refused = strict.post("/accounts/tokens/", {"name": "x"})
    assert refused.status_code == 403
    _check_html("POST /accounts/tokens/ without CSRF (403)", refused.content.decode(), findings)
    from django.template import loader
    from django.utils import translation

    with translation.override("ja"):
        _check_html("500.html", loader.render_to_string("500.html"), findings)
    assert len(urls) > 15, urls  # the walk reached the portal's pages
    assert not findings, f"{len(findings)} English texts shown to bob:\n" + "\n".join(findings)


def test_the_walk_fails_on_a_page_left_in_english():
    """The walk's check itself: a page with an untranslated entry and a sentence fails."""
    findings: list[str] = []
    msgid = next(m for m in english.catalog() if "%(" not in m and len(m) > 8)
    html = (
        f"<main><h1>{msgid}</h1><p>Only the holder can change this booking.</p>"
        "<code>Pick the rows you want from here</code>"
        "<p translate='no'>Bring your own data set</p><p>GPU 2 基 tesla-01 p50</p></main>"
    )
    _check_html("/example/", html, findings)
    assert findings == [
        f"/example/ → untranslated catalog entry: {msgid!r}",
        "/example/ → English: 'Only the holder can change this booking.'"
        "  (in 'Only the holder can change this booking.')",
    ] or (
        # A msgid that is itself a sentence is reported once as its entry.
        len(findings) == 2 and findings[0].endswith(f"{msgid!r}")
    ), findings


# -- the same check in Chromium: text made by JavaScript -------------------------------------

# The main pages, where scripts write text: the calendar, live regions, the SQL editor's
# panels, the team's chart.
BROWSER_PAGES = [
    "/", "/bookings/", "/team/", "/jobs/", "/jobs/{running}/", "/jobs/{failed}/",
    "/sessions/", "/sessions/{session}/", "/sql/", "/sql/?query={query}", "/pipelines/",
    "/pipeline-runs/{run}/",
]  # fmt: skip

# The page's rendered text (innerText: what is laid out, after scripts ran), blocks split at
# block elements as in visible.py, less code, editors and what is marked translate="no" or
# written in another language; plus attributes a reader meets and the charts' own labels.
READ_PAGE = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('script, style, template, code, pre, kbd, samp, textarea, noscript,'
    + ' .cm-editor, [translate="no"], [lang]:not([lang="ja"])').forEach(e => e.remove());
  const live = document.body;
  const blocks = [];
  const walker = document.createTreeWalker(body, NodeFilter.SHOW_ELEMENT);
  for (let el = walker.currentNode; el; el = walker.nextNode()) {
    for (const name of ['title', 'placeholder', 'aria-label', 'alt', 'data-confirm']) {
      if (el.getAttribute && el.getAttribute(name)) blocks.push(el.getAttribute(name));
    }
  }
  document.body.appendChild(body); body.style.position = 'absolute'; body.hidden = false;
  blocks.push(...body.innerText.split('\\n'));
  body.remove();
  const charts = [];
  if (window.KarimasuChart) {
    live.querySelectorAll('canvas').forEach(canvas => {
      const chart = window.KarimasuChart.getChart(canvas);
      if (!chart) return;
      (chart.data.datasets || []).forEach(d => d.label && charts.push(String(d.label)));
      const scales = chart.options.scales || {};
      Object.values(scales).forEach(
        s => s.title && s.title.text && charts.push(String(s.title.text)));
    });
  }
  return blocks.concat(charts).map(t => t.trim()).filter(Boolean);
}"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_main_pages_in_chromium_speak_japanese_to_bob(
    world,
    japanese_bob,
    page,
    sign_in,
):
    sign_in(japanese_bob)
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    ids = {
        "running": world.jobs["running"].pk, "failed": world.jobs["failed"].pk,
        "session": world.session.pk, "run": world.run.pk, "query": world.query.pk,
        "pipeline": world.pipeline.pk,
    }  # fmt: skip
    findings: list[str] = []
    read: dict[str, list[str]] = {}
    for template in BROWSER_PAGES:
        url = template.format(**ids)
        page.goto(url)
        page.wait_for_load_state("networkidle")
        if url.startswith("/sql/"):
            page.wait_for_selector(".cm-editor")
        page.wait_for_timeout(300)  # let the live regions' first refresh settle
        texts = page.evaluate(READ_PAGE)
        read[url] = texts
        _check_texts(f"chromium {url}", texts, findings)
    _screenshots(page, ids)
    # A confirm dialog, as a reader meets it: cancel the running job, then dismiss.
    page.goto(f"/jobs/{ids['running']}/")
    page.locator("form[data-confirm] button, form[data-confirm] [type=submit]").first.click()
    _check_texts("chromium confirm dialog", dialogs, findings)
    assert dialogs, "the cancel button asked nothing"
    # The pass read the pages (scripts ran: a page read as empty would pass unseen).
    assert all(len(texts) > 10 for texts in read.values()), {u: len(t) for u, t in read.items()}
    assert not findings, f"{len(findings)} English texts shown to bob:\n" + "\n".join(findings)


def _check_texts(where: str, texts: list[str], findings: list[str]) -> None:
    for text in texts:
        for problem in english.problems(text):
            line = f"{where} → {problem}  (in {text[:120]!r})"
            if line not in findings:
                findings.append(line)


# Main pages that no other browser test photographs: taken in Japanese (bob's language) and
# in English (the switcher's cookie), into var/screenshots/; docs/screenshots/ keeps copies.
SCREENSHOT_PAGES = {
    "dashboard": "/", "jobs": "/jobs/", "sessions": "/sessions/",
    "session-page": "/sessions/{session}/", "pipeline-run": "/pipeline-runs/{run}/",
    "pipelines": "/pipelines/", "pipeline": "/pipelines/{pipeline}/", "tokens": "/accounts/tokens/",
}  # fmt: skip


def _screenshots(page: Any, ids: dict[str, int]) -> None:
    from django.conf import settings

    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = page.url.split("/", 3)[:3]
    for language in ("ja", "en"):
        page.context.add_cookies(
            [{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": "/".join(base)}]
        )
        for name, template in SCREENSHOT_PAGES.items():
            page.goto(template.format(**ids))
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{language}.png"), full_page=True)
    page.context.clear_cookies(name=settings.LANGUAGE_COOKIE_NAME)


def test_the_walk_reads_the_texts_scripts_show():
    """Strings a script shows from the page's JSON (json_script) are walked too."""
    findings: list[str] = []
    html = (
        '<script id="x-strings" type="application/json">'
        '{"close": "Only the holder can change this booking."}</script>'
        '<script id="x-config" type="application/json">'
        '{"sql": "select the rows you want from here", "labels": {"run": "Run it now please"}}'
        "</script>"
    )
    _check_html("/example/", html, findings)
    assert [line.split("  (in")[0] for line in findings] == [
        "/example/ → English 'Only the holder can change this booking.' in the script data"
        " #x-strings",
        "/example/ → English 'Run it now please' in the script data #x-config",
    ], findings
