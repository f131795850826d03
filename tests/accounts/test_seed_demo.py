import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from portal.accounts.models import ApiToken, Membership, Team, User

pytestmark = pytest.mark.django_db


def _run(**options) -> str:
    import io

    out = io.StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def test_seed_creates_working_logins_and_a_working_token(settings):
    settings.DEBUG = True
    output = _run()
    assert Team.objects.count() == 3
    alice = User.objects.get(username="alice")
    assert alice.check_password("alice-demo-pass")
    assert Membership.objects.get(user=alice, team__slug="vision").role == "lead"
    assert "alice-demo-pass" in output

    token = next(line.split()[-1] for line in output.splitlines() if "API token" in line)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/me/").json()["username"] == "alice"


def test_seed_twice_is_idempotent_and_replaces_the_demo_token(settings):
    settings.DEBUG = True
    _run()
    _run()
    assert User.objects.filter(username="alice").count() == 1
    assert Membership.objects.filter(team__slug="vision").count() == 2
    demo = ApiToken.objects.filter(user__username="alice", name="demo")
    assert demo.count() == 2
    assert demo.filter(revoked_at__isnull=True).count() == 1


def test_seed_refuses_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        _run()
    assert not User.objects.exists()
