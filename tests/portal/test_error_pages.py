"""Unknown addresses show the portal's own 404 page in the reader's language, with DEBUG
off (production) and on (the demo `make run` starts); the API keeps its JSON errors."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.utils import translation

from portal.error_pages import server_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
def test_an_unknown_page_shows_the_portals_404(settings, debug) -> None:
    settings.DEBUG = debug
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and 'class="card error-page"' in html
    assert "Using the URLconf" not in html  # not Django's technical page


@pytest.mark.parametrize("debug", [False, True])
def test_the_404_speaks_japanese(settings, debug) -> None:
    settings.DEBUG = debug
    response = Client(headers={"accept-language": "ja"}).get("/no-such-page/")
    assert response.status_code == 404
    assert "ページが見つかりません" in response.content.decode()


def test_a_missing_job_is_the_same_404_under_debug(settings, alice) -> None:
    settings.DEBUG = True
    response = _signed_in(alice).get("/jobs/999999/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def _signed_in(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_the_api_keeps_json_404s(settings) -> None:
    settings.DEBUG = True
    response = Client().get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("language", "text"), [("en", "Something went wrong"), ("ja", "問題が発生しました")]
)
def test_the_500_page_in_both_languages(language, text) -> None:
    with translation.override(language):
        response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert text in response.content.decode()
