from __future__ import annotations

from typing import Any

from rest_framework import serializers

from portal.accounts.models import ApiToken, Membership, Team, User
from portal.accounts.services import MAX_TOKEN_LIFETIME
from portal.querysets import prebuilt


class TeamRoleSerializer(serializers.Serializer):
    """One of the user's teams with the user's role in it."""

    slug = serializers.SlugField(source="team.slug")
    name = serializers.CharField(source="team.name")
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MeSerializer(serializers.ModelSerializer):
    is_admin = serializers.BooleanField(source="is_staff")
    teams = TeamRoleSerializer(source="memberships", many=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "language",
            "time_zone",
            "is_admin",
            "teams",
        ]


@prebuilt
def _team_rows() -> Any:
    return Membership.objects.order_by("team__slug").values_list("team__slug", "team__name", "role")


def me_data(user: User) -> dict[str, Any]:
    """`MeSerializer(user).data` for the hot path of `GET /api/v1/me/`, built by hand.

    Building MeSerializer's fields and prefetching the memberships as model instances took
    most of the request; this is one query for (slug, name, role) in the memberships'
    order (team slug: the user is the same on every row) and a plain dict with the same
    keys and values (tests/accounts/test_me_fast.py compares the two).
    """
    teams = _team_rows().filter(user=user)
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "language": user.language,
        "time_zone": user.time_zone,
        "is_admin": bool(user.is_staff),
        "teams": [{"slug": slug, "name": name, "role": role} for slug, name, role in teams],
    }


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=MAX_TOKEN_LIFETIME.days, required=False, allow_null=True
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="The plaintext token. Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    full_name = serializers.CharField(source="user.get_full_name", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "full_name", "role", "joined_at"]
        read_only_fields = ["joined_at"]


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class TeamSerializer(serializers.ModelSerializer):
    members = MemberSerializer(source="memberships", many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["slug", "name", "description", "created_at", "members"]
        read_only_fields = ["created_at", "members"]
