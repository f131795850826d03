"""Issue #12 item 5: a removed member loses the team's calendar feed; only leads rotate it."""

from __future__ import annotations

from django.test import Client

from portal.accounts import services
from portal.accounts.models import Membership
from tests.conftest import assert_error

URL = "/api/v1/calendar-feeds/"


def team_feed(persona) -> str:
    [feed] = [f for f in persona.client().get(URL).json()["teams"] if f["team"] == "vision"]
    return feed["url"].split("testserver", 1)[1]


def test_removed_member_loses_the_team_feed(alice, bob, vision):
    url = team_feed(bob)
    assert Client().get(url).status_code == 200
    membership = Membership.objects.get(team=vision, user=bob.user)
    services.remove_member(alice.user, membership)
    assert Client().get(url).status_code == 404  # the URL bob knew is dead
    assert Client().get(team_feed(alice)).status_code == 200  # the others get the new one
    assert all(f["team"] != "vision" for f in bob.client().get(URL).json()["teams"])


def test_member_removed_through_the_api_loses_the_feed(alice, bob, vision):
    url = team_feed(bob)
    assert alice.client().delete("/api/v1/teams/vision/members/bob/").status_code == 204
    assert Client().get(url).status_code == 404


def test_only_a_lead_rotates_the_team_feed(alice, bob):
    before = team_feed(alice)
    assert_error(bob.client().post(URL, {"team": "vision"}, format="json"), 403)
    assert team_feed(alice) == before
    assert alice.client().post(URL, {"team": "vision"}, format="json").status_code == 200
    assert team_feed(alice) != before


def test_member_rotates_their_own_feed(bob):
    before = bob.client().get(URL).json()["user"]
    assert bob.client().post(URL, {}, format="json").json()["user"] != before


def test_outsider_cannot_rotate_a_team_feed(alice, charlie):
    assert_error(charlie.client().post(URL, {"team": "vision"}, format="json"), 404)


def test_rotation_body_must_be_an_object(bob):
    assert_error(bob.client().post(URL, [1, 2], format="json"), 400, "invalid")
    assert_error(bob.client().post(URL, {"team": ["vision"]}, format="json"), 400, "invalid")
