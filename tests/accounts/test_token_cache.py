"""Cached token lookups (the API's hot path) never outlive a revocation or a user change."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.accounts import services
from portal.accounts.models import ApiToken
from tests.conftest import assert_error


def test_second_request_does_not_query_the_token(alice, django_assert_max_num_queries):
    client = alice.client()
    assert client.get("/api/v1/me/").status_code == 200
    now = timezone.now()
    with django_assert_max_num_queries(0):
        assert services.authenticate_token(alice.token, now=now) is not None


def test_revoked_token_is_refused_at_once(alice):
    client = alice.client()
    assert client.get("/api/v1/me/").status_code == 200  # now cached
    token = ApiToken.objects.get(user=alice.user)
    assert client.delete(f"/api/v1/tokens/{token.pk}/").status_code in (200, 204)
    assert_error(client.get("/api/v1/me/"), 401)


def test_token_revoked_in_the_admin_is_refused_at_once(alice):
    client = alice.client()
    assert client.get("/api/v1/me/").status_code == 200
    token = ApiToken.objects.get(user=alice.user)
    token.revoked_at = timezone.now()
    token.save()
    assert_error(client.get("/api/v1/me/"), 401)


def test_deactivated_user_is_refused_at_once(alice):
    client = alice.client()
    assert client.get("/api/v1/me/").status_code == 200
    alice.user.is_active = False
    alice.user.save()
    assert_error(client.get("/api/v1/me/"), 401)


def test_cached_token_still_expires(alice):
    client = alice.client()
    assert client.get("/api/v1/me/").status_code == 200
    now = timezone.now()
    ApiToken.objects.filter(user=alice.user).update(expires_at=now + timedelta(seconds=1))
    services.forget_tokens(user_id=alice.user.pk)
    assert services.authenticate_token(alice.token, now=now) is not None  # cached again
    assert services.authenticate_token(alice.token, now=now + timedelta(seconds=2)) is None


def test_cache_can_be_turned_off(alice, settings, django_assert_num_queries):
    settings.KARIMASU_TOKEN_CACHE_SECONDS = 0
    now = timezone.now()
    services.authenticate_token(alice.token, now=now)
    with django_assert_num_queries(1):
        assert services.authenticate_token(alice.token, now=now) is not None
