"""A person logs in, switches to Japanese, makes a token and uses it from a script."""

from __future__ import annotations

import json
import urllib.request

import pytest

from portal.accounts.models import ApiToken

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_switch_language_create_token_and_call_the_api(page, live_server, alice):
    page.goto("/")
    assert page.url.endswith("/accounts/login/?next=/")

    page.fill("#id_username", "alice")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").is_visible()

    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("h1").inner_text() == "Welcome, alice"
    assert "Vision Lab" in page.locator("table").inner_text()

    with page.expect_navigation():
        page.select_option("#language", "ja")
    assert page.get_by_role("link", name="ダッシュボード").is_visible()

    page.get_by_role("link", name="APIトークン").click()
    page.fill("#id_name", "notebook")
    page.get_by_role("button", name="作成").click()
    token = page.locator("#new-token pre").inner_text().strip()
    assert token.startswith("kms_")
    assert ApiToken.objects.filter(user=alice.user, name="notebook").exists()

    request = urllib.request.Request(
        f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["username"] == "alice"

    with page.expect_navigation():
        page.get_by_role("button", name="失効させる").first.click()
    assert page.get_by_text("トークン「notebook」を失効させました。").is_visible()
    assert ApiToken.objects.get(user=alice.user, name="notebook").revoked_at is not None
