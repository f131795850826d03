"""An unknown address shows the portal's own 404 page, in English and Japanese, also with
DEBUG on as in the demo (issue 18 item 7)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_unknown_addresses_show_the_portals_404(
    page, live_server, settings, sign_in, alice
) -> None:
    settings.DEBUG = True  # `make run` runs the demo with DEBUG on
    sign_in(alice)
    response = page.goto("/no-such-page/")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Page not found"
    assert "URLconf" not in page.content()
    page.get_by_role("link", name="Back to the dashboard").click()
    page.wait_for_url("**/")

    # A Japanese browser, signed out: the page follows its Accept-Language.
    japanese = page.context.browser.new_context(locale="ja-JP", base_url=live_server.url)
    try:
        other = japanese.new_page()
        response = other.goto("/no-such-page-either/")
        assert response is not None and response.status == 404
        assert other.locator("h1").inner_text() == "ページが見つかりません"
    finally:
        japanese.close()
