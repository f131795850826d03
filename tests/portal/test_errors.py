"""Every failure under /api/ is the one JSON error shape with the right 4xx/5xx status."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from django.urls import include, path
from rest_framework.views import APIView

from portal.api.exceptions import PayloadTooLarge
from portal.api.parsers import BoundedJSONParser
from portal.errors import Conflict
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


class _Boom(APIView):
    def get(self, request):
        raise RuntimeError("a bug")


class _Refuses(APIView):
    def get(self, request):
        raise Conflict("Already booked.", details={"conflicts": [1, 2]})


def _plain_django_boom(request):
    raise RuntimeError("a bug outside DRF")


urlpatterns = [
    path("api/v1/boom/", _Boom.as_view()),
    path("api/v1/refuses/", _Refuses.as_view()),
    path("api/v1/plain-boom/", _plain_django_boom),
    path("", include("portal.urls")),
]


def test_malformed_json_is_400_with_line_and_column(alice):
    response = alice.client().post(
        "/api/v1/tokens/", data='{\n  "name": "x",\n  oops\n}', content_type="application/json"
    )
    error = assert_error(response, 400, "malformed_json")
    assert error["details"] == {"line": 3, "column": 3}
    assert "line 3, column 3" in error["message"]


def test_non_utf8_body_is_400(alice):
    response = alice.client().post(
        "/api/v1/tokens/", data=b'{"name": "\xff"}', content_type="application/json"
    )
    assert_error(response, 400, "malformed_json")


def test_wrong_content_type_is_415(alice):
    response = alice.client().post(
        "/api/v1/tokens/", data="name=x", content_type="application/x-www-form-urlencoded"
    )
    error = assert_error(response, 415, "unsupported_media_type")
    assert "application/x-www-form-urlencoded" in error["message"]


def test_unknown_route_is_404_json_even_for_anonymous(db):
    error = assert_error(Client().get("/api/v1/no-such-thing/"), 404, "not_found")
    assert "/api/v1/no-such-thing/" in error["message"]


def test_unknown_route_is_404_json_under_debug(db, settings):
    settings.DEBUG = True
    assert_error(Client().get("/api/nothing"), 404)


def test_unknown_page_outside_the_api_stays_html(db):
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_too_large_body_is_413_before_parsing(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"name": "' + "x" * 2000 + '"}'
    error = assert_error(
        alice.client().post("/api/v1/tokens/", data=body, content_type="application/json"),
        413,
        "payload_too_large",
    )
    assert error["details"]["limit_bytes"] == 1000


def test_parser_stops_reading_at_the_limit_without_a_content_length(settings):
    """A chunked body carries no Content-Length: the parser is the second guard."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    stream = io.BytesIO(b'{"name": "' + b"x" * 10_000 + b'"}')
    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(stream, "application/json", {})
    assert stream.tell() == 101


def test_method_not_allowed_is_405(alice):
    error = assert_error(
        alice.client().put("/api/v1/me/", {}, format="json"), 405, "method_not_allowed"
    )
    assert "PUT" in error["message"]


def test_forbidden_is_403(bob, alice):
    assert_error(
        bob.client().post("/api/v1/teams/vision/members/", {"username": "alice"}, format="json"),
        403,
        "permission_denied",
    )


def test_service_conflict_is_409_with_details(alice, settings):
    settings.ROOT_URLCONF = __name__
    error = assert_error(alice.client().get("/api/v1/refuses/"), 409, "conflict")
    assert error == {
        "code": "conflict",
        "message": "Already booked.",
        "details": {"conflicts": [1, 2]},
    }


def test_throttled_is_429_with_retry_after(alice, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "3/min"},
    }
    client = alice.client()
    statuses = [client.get("/api/v1/me/").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = client.get("/api/v1/me/")
    error = assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert error["details"]["retry_after_seconds"] > 0


def test_throttle_is_per_user(alice, bob, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "2/min", "anon": "2/min"},
    }
    for _ in range(2):
        alice.client().get("/api/v1/me/")
    assert_error(alice.client().get("/api/v1/me/"), 429)
    assert bob.client().get("/api/v1/me/").status_code == 200


def test_unhandled_error_in_an_api_view_is_500_json_without_a_traceback(alice, settings):
    settings.ROOT_URLCONF = __name__
    response = alice.client().get("/api/v1/boom/")
    error = assert_error(response, 500, "server_error")
    assert "a bug" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert error["message"] == "Internal server error."


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_unhandled_error_outside_drf_is_500_json(db, settings, debug):
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/plain-boom/")
    assert_error(response, 500, "server_error")
    assert "a bug outside DRF" not in response.content.decode()


def test_pagination_shape_and_page_size(alice):
    for i in range(5):
        alice.client().post("/api/v1/tokens/", {"name": f"t{i}"}, format="json")
    page = alice.client().get("/api/v1/tokens/?page_size=2&page=2").json()
    assert page["count"] == 6
    assert len(page["results"]) == 2
    assert page["next"] and page["previous"]
    assert_error(alice.client().get("/api/v1/tokens/?page=99"), 404)
