"""Debian's chromium driven by Playwright against pytest-django's live server.

Playwright's own browser download cannot work here: the browser is /usr/bin/chromium,
installed by `make test` when missing. A missing browser fails the test, never skips it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = os.environ.get("KARIMASU_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(monkeypatch, live_server):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs it"
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-US", base_url=live_server.url)
        page = context.new_page()
        page.set_default_timeout(15_000)
        # Every page runs under the Content-Security-Policy: a violation fails the test.
        violations: list[str] = []
        page.on(
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
            page.screenshot(path=str(SCREENSHOTS / "last.png"), full_page=True)
            browser.close()
            # ORM calls made while Playwright's loop runs get connections of their own
            # (asgiref locals are per context); close them here, in that same context, or
            # they outlive the test and block the test database's teardown.
            connections.close_all()


@pytest.fixture
def sign_in(page, live_server):
    """Sign a persona in for the page: a session made by Django's test client, handed to the
    browser as its cookie (the login form itself is tested in test_login.py)."""
    from django.conf import settings
    from django.test import Client

    def signed_in(persona) -> None:
        client = Client()
        client.force_login(persona.user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
        )

    return signed_in
