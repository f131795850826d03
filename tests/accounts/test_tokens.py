"""Personal API tokens: hashed at rest, shown once, revocable, never crossing users."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.test import APIClient

from portal.accounts import services
from portal.accounts.models import ApiToken
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_me_answers_with_the_token_owner_teams_and_roles(alice):
    response = alice.client().get("/api/v1/me/")
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "alice"
    assert body["is_admin"] is False
    assert body["teams"] == [{"slug": "vision", "name": "Vision Lab", "role": "lead"}]
    assert (body["language"], body["time_zone"]) == ("en", "")  # "": the site's time zone


@pytest.mark.parametrize(
    "header, want_message",
    [
        pytest.param(None, "not provided", id="no-header"),
        pytest.param("Bearer kms_not-a-real-token", "Invalid", id="unknown-token"),
        pytest.param("Bearer", "Malformed", id="bearer-without-token"),
        pytest.param("Bearer a b", "Malformed", id="too-many-parts"),
        pytest.param("Bearer nonsense", "Invalid", id="wrong-prefix"),
    ],
)
def test_me_without_a_valid_token_is_401_json(db, header, want_message):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    error = assert_error(client.get("/api/v1/me/"), 401)
    assert want_message in error["message"]


def test_401_carries_the_bearer_challenge(db):
    response = APIClient().get("/api/v1/me/")
    assert response["WWW-Authenticate"] == 'Bearer realm="karimasu"'


def test_created_token_is_shown_once_and_stored_only_as_a_digest(alice):
    response = alice.client().post("/api/v1/tokens/", {"name": "laptop"}, format="json")
    assert response.status_code == 201
    plaintext = response.json()["token"]
    assert plaintext.startswith("kms_")

    row = ApiToken.objects.get(pk=response.json()["id"])
    assert row.digest == services.token_digest(plaintext)
    stored = {row.name, row.prefix, row.digest}
    assert plaintext not in stored
    assert plaintext.startswith(row.prefix)

    listed = alice.client().get("/api/v1/tokens/").json()["results"]
    assert {t["name"] for t in listed} == {"test", "laptop"}
    assert all("token" not in t for t in listed)

    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert fresh.get("/api/v1/me/").json()["username"] == "alice"


def test_revoked_token_is_refused(alice):
    token_id = ApiToken.objects.get(user=alice.user).pk
    assert alice.client().delete(f"/api/v1/tokens/{token_id}/").status_code == 204
    error = assert_error(alice.client().get("/api/v1/me/"), 401, "authentication_failed")
    assert "revoked" in error["message"]


def test_expired_token_is_refused(alice):
    _, plaintext = services.create_api_token(
        alice.user,
        name="short",
        now=timezone.now() - timedelta(days=2),
        expires_in=timedelta(days=1),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert_error(client.get("/api/v1/me/"), 401)


def test_inactive_users_token_is_refused(alice):
    alice.user.is_active = False
    alice.user.save()
    assert_error(alice.client().get("/api/v1/me/"), 401)


def test_duplicate_live_name_is_409_but_a_revoked_name_can_be_reused(alice):
    client = alice.client()
    first = client.post("/api/v1/tokens/", {"name": "ci"}, format="json").json()
    assert_error(client.post("/api/v1/tokens/", {"name": "ci"}, format="json"), 409, "conflict")
    client.delete(f"/api/v1/tokens/{first['id']}/")
    assert client.post("/api/v1/tokens/", {"name": "ci"}, format="json").status_code == 201


@pytest.mark.parametrize(
    "payload, want_field",
    [
        pytest.param({}, "name", id="missing-name"),
        pytest.param({"name": "x", "expires_in_days": 0}, "expires_in_days", id="zero-days"),
        pytest.param({"name": "x", "expires_in_days": 1000}, "expires_in_days", id="too-long"),
        pytest.param({"name": "x" * 101}, "name", id="name-too-long"),
    ],
)
def test_invalid_token_requests_name_the_field(alice, payload, want_field):
    error = assert_error(
        alice.client().post("/api/v1/tokens/", payload, format="json"), 400, "invalid"
    )
    assert want_field in error["details"]
    assert error["message"].startswith(f"{want_field}:")


def test_one_users_token_never_acts_as_another(alice, bob):
    # Each token identifies exactly its owner.
    assert alice.client().get("/api/v1/me/").json()["username"] == "alice"
    assert bob.client().get("/api/v1/me/").json()["username"] == "bob"

    # Bob cannot see, read or revoke alice's tokens: they do not exist for him.
    alice_token_id = ApiToken.objects.get(user=alice.user).pk
    assert alice_token_id not in {
        t["id"] for t in bob.client().get("/api/v1/tokens/").json()["results"]
    }
    assert_error(bob.client().get(f"/api/v1/tokens/{alice_token_id}/"), 404)
    assert_error(bob.client().delete(f"/api/v1/tokens/{alice_token_id}/"), 404)
    assert ApiToken.objects.get(pk=alice_token_id).revoked_at is None
    assert alice.client().get("/api/v1/me/").json()["username"] == "alice"

    # A token bob creates belongs to bob, whatever the request says.
    made = (
        bob.client()
        .post("/api/v1/tokens/", {"name": "mine", "user": alice.user.pk}, format="json")
        .json()
    )
    assert ApiToken.objects.get(pk=made["id"]).user == bob.user


def test_admin_token_does_not_reach_other_users_tokens(admin, alice):
    alice_token_id = ApiToken.objects.get(user=alice.user).pk
    assert_error(admin.client().delete(f"/api/v1/tokens/{alice_token_id}/"), 404)
    assert ApiToken.objects.get(pk=alice_token_id).revoked_at is None


def test_last_used_is_written_at_most_once_a_minute(alice):
    now = timezone.now()
    token = services.authenticate_token(alice.token, now=now)
    assert token is not None
    assert ApiToken.objects.get(pk=token.pk).last_used_at == now

    services.authenticate_token(alice.token, now=now + timedelta(seconds=30))
    assert ApiToken.objects.get(pk=token.pk).last_used_at == now

    later = now + timedelta(minutes=2)
    services.authenticate_token(alice.token, now=later)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == later


def test_purge_removes_only_tokens_dead_past_retention(alice):
    now = timezone.now()
    old, _ = services.create_api_token(alice.user, name="old", now=now - timedelta(days=90))
    recent, _ = services.create_api_token(alice.user, name="recent", now=now)
    services.revoke_api_token(alice.user, old.pk, now=now - timedelta(days=31))
    services.revoke_api_token(alice.user, recent.pk, now=now - timedelta(days=1))

    assert services.purge_dead_tokens(now=now) == 1
    names = set(ApiToken.objects.filter(user=alice.user).values_list("name", flat=True))
    assert names == {"test", "recent"}


def test_session_auth_requires_csrf_for_writes(alice):
    client = APIClient(enforce_csrf_checks=True)
    # django-axes checks every password sign-in against its request (lockouts).
    assert client.login(request=HttpRequest(), username="alice", password="alice-pass-123")
    assert client.get("/api/v1/me/").json()["username"] == "alice"

    error = assert_error(client.post("/api/v1/tokens/", {"name": "web"}, format="json"), 403)
    assert "CSRF" in error["message"]

    client.get("/accounts/tokens/")  # sets the CSRF cookie, as the browser would
    csrf = client.cookies["csrftoken"].value
    response = client.post("/api/v1/tokens/", {"name": "web"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 201
