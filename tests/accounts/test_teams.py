"""Teams and membership: who sees a team, who changes it."""

from __future__ import annotations

import pytest

from portal.accounts.models import Membership
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


def _slugs(response) -> set[str]:
    return {t["slug"] for t in response.json()["results"]}


def test_members_see_their_teams_admins_see_all(alice, bob, charlie, admin):
    assert _slugs(alice.client().get("/api/v1/teams/")) == {"vision"}
    assert _slugs(bob.client().get("/api/v1/teams/")) == {"vision"}
    assert _slugs(charlie.client().get("/api/v1/teams/")) == {"nlp"}
    assert _slugs(admin.client().get("/api/v1/teams/")) == {"vision", "nlp"}


def test_outsider_cannot_see_a_team_or_its_members(alice, charlie):
    assert_error(charlie.client().get("/api/v1/teams/vision/"), 404)
    members = alice.client().get("/api/v1/teams/vision/").json()["members"]
    assert {m["username"] for m in members} == {"alice"}


def test_lead_adds_a_member_and_the_member_sees_the_team(alice, charlie):
    response = alice.client().post(
        "/api/v1/teams/vision/members/", {"username": "charlie"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["role"] == "member"
    assert "vision" in _slugs(charlie.client().get("/api/v1/teams/"))


def test_member_cannot_change_the_team(alice, bob, charlie):
    error = assert_error(
        bob.client().post("/api/v1/teams/vision/members/", {"username": "charlie"}, format="json"),
        403,
        "permission_denied",
    )
    assert "leads" in error["message"]
    assert_error(bob.client().delete("/api/v1/teams/vision/members/alice/"), 403)
    assert Membership.objects.filter(team__slug="vision").count() == 2


def test_outsider_cannot_change_the_team(alice, charlie):
    assert_error(charlie.client().delete("/api/v1/teams/vision/members/alice/"), 404)


def test_adding_someone_twice_is_409(alice, bob):
    assert_error(
        alice.client().post("/api/v1/teams/vision/members/", {"username": "bob"}, format="json"),
        409,
    )


def test_adding_an_unknown_user_is_400_naming_the_field(alice):
    error = assert_error(
        alice.client().post("/api/v1/teams/vision/members/", {"username": "nobody"}, format="json"),
        400,
    )
    assert "username" in error["details"]


def test_the_last_lead_cannot_step_down_or_leave(alice, bob):
    assert_error(
        alice.client().patch(
            "/api/v1/teams/vision/members/alice/", {"role": "member"}, format="json"
        ),
        409,
    )
    assert_error(alice.client().delete("/api/v1/teams/vision/members/alice/"), 409)

    promoted = alice.client().patch(
        "/api/v1/teams/vision/members/bob/", {"role": "lead"}, format="json"
    )
    assert promoted.json()["role"] == "lead"
    assert alice.client().delete("/api/v1/teams/vision/members/alice/").status_code == 204
    assert not Membership.objects.filter(team__slug="vision", user=alice.user).exists()


def test_admin_manages_any_team(admin, alice, charlie):
    response = admin.client().post(
        "/api/v1/teams/vision/members/", {"username": "charlie", "role": "lead"}, format="json"
    )
    assert response.status_code == 201


def test_only_admins_create_teams(alice, admin):
    assert_error(
        alice.client().post("/api/v1/teams/", {"slug": "new", "name": "New"}, format="json"), 403
    )
    assert (
        admin.client()
        .post("/api/v1/teams/", {"slug": "new", "name": "New"}, format="json")
        .status_code
        == 201
    )
    assert_error(
        admin.client().post("/api/v1/teams/", {"slug": "new", "name": "Again"}, format="json"), 400
    )


def test_team_list_does_not_query_per_team(admin, django_assert_max_num_queries):
    from portal.accounts.models import Team, User

    for i in range(10):
        team = Team.objects.create(slug=f"t{i}", name=f"T{i}")
        for j in range(3):
            user = User.objects.create(username=f"u{i}-{j}")
            Membership.objects.create(team=team, user=user)
    with django_assert_max_num_queries(8):
        response = admin.client().get("/api/v1/teams/")
    assert response.json()["count"] == 10
