"""Issue #12 item 4: the sign-in page stops password guessing (django-axes).

Before: any number of wrong passwords could be tried against the login page.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from portal.accounts.models import User

URL = "/accounts/login/"


@pytest.fixture
def victim(db) -> User:
    return User.objects.create_user("victim", password="right-horse-battery")


def attempt(client: Client, password: str, **extra):
    return client.post(URL, {"username": "victim", "password": password}, **extra)


def test_five_wrong_passwords_lock_out_even_the_right_one(victim, settings):
    settings.AXES_FAILURE_LIMIT = 5
    client = Client(REMOTE_ADDR="198.51.100.1")
    for _ in range(4):
        assert attempt(client, "wrong").status_code == 200  # the form again, with an error
    locked = attempt(client, "wrong")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    response = attempt(client, "right-horse-battery")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_lockout_is_per_user_and_address(victim, settings):
    settings.AXES_FAILURE_LIMIT = 3
    attacker = Client(REMOTE_ADDR="198.51.100.1")
    for _ in range(3):
        attempt(attacker, "wrong")
    assert attempt(attacker, "right-horse-battery").status_code == 429
    owner = Client(REMOTE_ADDR="203.0.113.5")  # the real person elsewhere is not locked out
    assert attempt(owner, "right-horse-battery").status_code == 302


def test_a_forged_x_forwarded_for_does_not_escape_the_lockout(victim, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.KARIMASU_TRUSTED_PROXIES = 0
    client = Client(REMOTE_ADDR="198.51.100.1")
    for i in range(3):
        attempt(client, "wrong", HTTP_X_FORWARDED_FOR=f"10.9.9.{i}")
    response = attempt(client, "right-horse-battery", HTTP_X_FORWARDED_FOR="10.9.9.99")
    assert response.status_code == 429


def test_lockout_ends_after_the_cool_off(victim, settings):
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    client = Client(REMOTE_ADDR="198.51.100.1")
    for _ in range(2):
        attempt(client, "wrong")
    assert attempt(client, "right-horse-battery").status_code == 429
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16)
    )
    assert attempt(client, "right-horse-battery").status_code == 302


def test_success_resets_the_count(victim, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client(REMOTE_ADDR="198.51.100.1")
    attempt(client, "wrong")
    attempt(client, "wrong")
    assert attempt(client, "right-horse-battery").status_code == 302
    client.logout()
    attempt(client, "wrong")
    attempt(client, "wrong")
    assert attempt(client, "right-horse-battery").status_code == 302
