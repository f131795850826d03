"""GET /api/v1/me/ is built by hand (me_data): it must equal MeSerializer's output."""

from __future__ import annotations

import pytest
from django.db.models import Prefetch, prefetch_related_objects
from rest_framework.renderers import JSONRenderer

from portal.accounts.api.serializers import MeSerializer, me_data
from portal.accounts.models import Membership, Team, User


def serializer_output(user: User) -> dict:
    user = User.objects.get(pk=user.pk)
    prefetch_related_objects(
        [user], Prefetch("memberships", queryset=Membership.objects.select_related("team"))
    )
    return dict(MeSerializer(user).data)


@pytest.mark.parametrize("staff", [False, True])
def test_me_data_equals_the_serializer(db, staff):
    user = User.objects.create_user(
        "zoe", email="zoe@example.com", first_name="Zoë", last_name="Ōta", is_staff=staff
    )
    user.language, user.time_zone = "ja", "Asia/Tokyo"
    user.save()
    for slug, role in [("zeta", "member"), ("alpha", "lead"), ("mid", "member")]:
        team = Team.objects.create(slug=slug, name=f"Team {slug}")
        Membership.objects.create(team=team, user=user, role=role)
    other = User.objects.create_user("aaron")
    Membership.objects.create(team=Team.objects.get(slug="mid"), user=other, role="lead")

    assert me_data(user) == serializer_output(user)
    assert JSONRenderer().render(me_data(user)) == JSONRenderer().render(serializer_output(user))
    assert [t["slug"] for t in me_data(user)["teams"]] == ["alpha", "mid", "zeta"]


def test_me_data_without_teams(db):
    user = User.objects.create_user("loner")
    assert me_data(user) == serializer_output(user) == {**me_data(user), "teams": []}


def test_me_endpoint_output_and_queries(alice, bob, django_assert_num_queries):
    client = alice.client()
    client.get("/api/v1/me/")  # the token lookup and its use are recorded once
    with django_assert_num_queries(1):  # the teams; the token comes from the cache
        body = client.get("/api/v1/me/").json()
    assert body == serializer_output(alice.user)
    assert body["teams"] == [{"slug": "vision", "name": body["teams"][0]["name"], "role": "lead"}]
