"""Single sign-on against a real OpenID Connect provider (issue #12).

The provider is django-oauth-toolkit in its own Django project and process
(`tests/oidc_provider/`), with RS256-signed ID tokens, PKCE and a `groups` claim. The test
plays the browser: it follows the portal's redirect to the provider, signs in there with a
password, follows the provider's redirect back with the code, and the portal exchanges the
code with the provider over HTTP and checks the token — nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from django.test import Client

from portal.accounts.models import Membership, Team, User
from portal.accounts.oidc import sync_teams
from portal.accounts.oidc_config import parse_group_teams

ROOT = Path(__file__).resolve().parents[2]
CALLBACK = "http://testserver/oidc/callback/"
PEOPLE = [
    {
        "username": "erin",
        "email": "erin@example.com",
        "password": "erin-idp-pass",
        "groups": ["vision-leads", "analysts", "unrelated"],
    },
    {"username": "frank", "email": "frank@example.com", "password": "frank-idp-pass"},
    {
        "username": "root",
        "email": "root@example.com",
        "password": "root-idp-pass",
        "groups": ["karimasu-admins"],
    },
]


@pytest.fixture(scope="module")
def provider():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider.serve", CALLBACK],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        process.stdin.write(json.dumps(PEOPLE))
        process.stdin.close()
        line = process.stdout.readline()
        assert line, "the OIDC provider did not start"
        info = json.loads(line)
        discovery = requests.get(
            f"{info['base']}/o/.well-known/openid-configuration", timeout=10
        ).json()
        yield {**info, "discovery": discovery}
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sso(provider, settings, db):
    d = provider["discovery"]
    settings.OIDC_RP_CLIENT_ID = provider["client_id"]
    settings.OIDC_RP_CLIENT_SECRET = provider["secret"]
    settings.OIDC_OP_ISSUER = d["issuer"]
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = d["authorization_endpoint"]
    settings.OIDC_OP_TOKEN_ENDPOINT = d["token_endpoint"]
    settings.OIDC_OP_USER_ENDPOINT = d["userinfo_endpoint"]
    settings.OIDC_OP_JWKS_ENDPOINT = d["jwks_uri"]
    settings.OIDC_GROUP_TEAMS = parse_group_teams(
        "vision-leads=vision:lead,analysts=analytics,nlp-people=nlp"
    )
    settings.OIDC_ADMIN_GROUPS = ["karimasu-admins"]
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "portal.accounts.oidc.KarimasuOIDCBackend",
    ]
    for slug in ("vision", "analytics", "nlp", "infra"):
        Team.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    return provider


def sign_in(portal: Client, username: str, password: str):
    """The browser's side of the code flow; returns the portal's final response."""
    start = portal.get("/oidc/authenticate/")
    assert start.status_code == 302, start
    browser = requests.Session()
    at_provider = browser.get(start["Location"], allow_redirects=True, timeout=10)
    assert "csrfmiddlewaretoken" in at_provider.text  # the provider's sign-in form
    back = browser.post(
        at_provider.url,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "next": parse_qs(urlsplit(at_provider.url).query)["next"][0],
        },
        headers={"Referer": at_provider.url},
        allow_redirects=False,
        timeout=10,
    )
    while back.status_code == 302 and not back.headers["Location"].startswith(CALLBACK):
        back = browser.get(
            urljoin(back.url, back.headers["Location"]), allow_redirects=False, timeout=10
        )
    assert back.headers["Location"].startswith(CALLBACK), back.headers
    callback = urlsplit(back.headers["Location"])
    return portal.get(f"{callback.path}?{callback.query}")


def roles(user: User) -> dict[str, str]:
    return dict(Membership.objects.filter(user=user).values_list("team__slug", "role"))


def test_sso_creates_the_person_with_teams_from_their_groups(sso):
    portal = Client()
    response = sign_in(portal, "erin", "erin-idp-pass")
    assert response.status_code == 302 and response["Location"] == "/", response
    user = User.objects.get(username="erin")
    assert int(portal.session["_auth_user_id"]) == user.pk
    assert user.email == "erin@example.com" and user.oidc_subject
    assert not user.has_usable_password()
    assert roles(user) == {"vision": "lead", "analytics": "member"}
    assert portal.get("/").status_code == 200


def test_sso_sync_removes_mapped_teams_but_keeps_local_ones(sso):
    portal = Client()
    sign_in(portal, "frank", "frank-idp-pass")
    frank = User.objects.get(username="frank")
    Membership.objects.create(team=Team.objects.get(slug="nlp"), user=frank)  # mapped team
    Membership.objects.create(team=Team.objects.get(slug="infra"), user=frank)  # not mapped
    portal.logout()
    sign_in(portal, "frank", "frank-idp-pass")  # frank has no groups at the provider
    assert roles(frank) == {"infra": "member"}


def test_admin_group_makes_a_site_admin(sso):
    portal = Client()
    sign_in(portal, "root", "root-idp-pass")
    assert User.objects.get(username="root").is_staff


def test_sso_never_takes_over_a_local_account_with_the_same_email(sso):
    local = User.objects.create_user("erin", email="erin@example.com", password="local-pass-1")
    portal = Client()
    sign_in(portal, "erin", "erin-idp-pass")
    signed_in = User.objects.get(pk=portal.session["_auth_user_id"])
    assert signed_in.pk != local.pk and signed_in.username == "erin-2"
    assert roles(local) == {}


def test_local_accounts_still_sign_in_next_to_sso(sso):
    User.objects.create_user("lab", password="lab-local-pass-1")
    response = Client().post(
        "/accounts/login/", {"username": "lab", "password": "lab-local-pass-1"}
    )
    assert response.status_code == 302
    page = Client().get("/accounts/login/").content.decode()
    assert "/oidc/authenticate/" in page


def test_a_forged_callback_signs_nobody_in(sso):
    portal = Client()
    portal.get("/oidc/authenticate/")
    response = portal.get("/oidc/callback/?code=forged&state=forged")
    assert "_auth_user_id" not in portal.session
    assert response.status_code in (302, 400)


def test_sso_endpoints_are_404_when_not_configured(client, db, settings):
    settings.OIDC_RP_CLIENT_ID = ""
    assert client.get("/oidc/authenticate/").status_code == 404
    assert "/oidc/authenticate/" not in client.get("/accounts/login/").content.decode()


def test_group_mapping_setting_is_parsed_strictly():
    assert parse_group_teams("a=vision:lead, b=nlp") == {
        "a": ("vision", "lead"),
        "b": ("nlp", "member"),
    }
    with pytest.raises(ValueError):
        parse_group_teams("a=vision:owner")


def test_sync_prefers_lead_when_two_groups_map_to_one_team(db, settings):
    settings.OIDC_GROUP_TEAMS = parse_group_teams("x=vision,y=vision:lead")
    team = Team.objects.create(slug="vision", name="Vision")
    user = User.objects.create_user("g")
    sync_teams(user, ["x", "y"])
    assert Membership.objects.get(team=team, user=user).role == "lead"
