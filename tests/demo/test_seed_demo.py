import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from portal.accounts.models import ApiToken, Membership, Team, User

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _private_var_dir(settings, tmp_path):
    """seed_demo keeps its banner under VAR_DIR: never the developer's own var/."""
    settings.VAR_DIR = tmp_path


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


@pytest.mark.django_db(transaction=True)
def test_the_banner_comes_again_once_the_demo_answers(settings, live_server, tmp_path):
    import io

    settings.DEBUG = True
    printed = _run()
    token = next(line.split()[-1] for line in printed.splitlines() if "API token" in line)
    banner = (tmp_path / "demo-banner.txt").read_text(encoding="utf-8")
    assert token in banner and "alice-demo-pass" in banner
    assert oct((tmp_path / "demo-banner.txt").stat().st_mode & 0o777) == "0o600"

    out = io.StringIO()
    call_command("demo_banner", url=live_server.url, once=True, wait=10, stdout=out)
    shown = out.getvalue()
    assert f"Karimasu is ready: {live_server.url}/" in shown
    assert f"{live_server.url}/sql/" in shown
    assert token in shown and "bob      / bob-demo-pass" in shown


def test_the_banner_gives_up_on_a_portal_that_never_answers(settings):
    with pytest.raises(CommandError, match="did not get ready"):
        call_command("demo_banner", url="http://127.0.0.1:9", once=True, wait=0.6)
