"""Accounts API: who am I, my tokens, teams and their members. Views call services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts import services
from portal.accounts.access import visible_teams
from portal.accounts.api import serializers as s
from portal.accounts.models import ApiToken, Membership, Team, User
from portal.errors import InvalidRequest, NotFoundError


class MeView(APIView):
    @extend_schema(responses=s.MeSerializer, summary="The authenticated user, teams and roles")
    def get(self, request: Request) -> Response:
        # The authenticator already loaded the user; fetch only the teams, as plain rows.
        return Response(s.me_data(request.user))


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your personal API tokens. Create returns the plaintext once; delete revokes."""

    serializer_class = s.ApiTokenSerializer
    queryset = ApiToken.objects.none()

    def get_queryset(self) -> Any:
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(request=s.ApiTokenCreateSerializer, responses={201: s.ApiTokenCreatedSerializer})
    def create(self, request: Request) -> Response:
        form = s.ApiTokenCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        days = form.validated_data.get("expires_in_days")
        token, plaintext = services.create_api_token(
            request.user,
            name=form.validated_data["name"],
            now=timezone.now(),
            expires_in=timedelta(days=days) if days else None,
        )
        token.token = plaintext  # type: ignore[attr-defined]
        return Response(s.ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, summary="Revoke a token")
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.revoke_api_token(request.user, _int_pk(pk), now=timezone.now())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _int_pk(pk: str | None) -> int:
    try:
        return int(pk or "")
    except ValueError:
        raise NotFoundError(_("No such token.")) from None


class TeamViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Teams you belong to (admins: all). Leads and admins manage members."""

    serializer_class = s.TeamSerializer
    lookup_field = "slug"
    queryset = Team.objects.none()

    def get_queryset(self) -> Any:
        return visible_teams(self.request.user).prefetch_related(
            Prefetch("memberships", queryset=Membership.objects.select_related("user"))
        )

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.create_team(self.request.user, **serializer.validated_data)

    @extend_schema(request=s.MemberAddSerializer, responses={201: s.MemberSerializer})
    @action(detail=True, methods=["post"], url_path="members")
    def add_member(self, request: Request, slug: str | None = None) -> Response:
        team = self.get_object()
        form = s.MemberAddSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = User.objects.filter(username=form.validated_data["username"], is_active=True).first()
        if user is None:
            raise InvalidRequest(
                _("No active user named %(name)s.") % {"name": form.validated_data["username"]},
                details={"username": [_("Unknown user.")]},
            )
        membership = services.add_member(
            request.user, team, user=user, role=form.validated_data["role"]
        )
        return Response(s.MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MemberRoleSerializer, responses={200: s.MemberSerializer, 204: None})
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<username>[^/]+)")
    def member(
        self, request: Request, slug: str | None = None, username: str | None = None
    ) -> Response:
        team = self.get_object()
        membership = get_object_or_404(
            Membership.objects.select_related("team", "user"), team=team, user__username=username
        )
        if request.method == "DELETE":
            services.remove_member(request.user, membership)
            return Response(status=status.HTTP_204_NO_CONTENT)
        form = s.MemberRoleSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        membership = services.change_role(
            request.user, membership, role=form.validated_data["role"]
        )
        return Response(s.MemberSerializer(membership).data)
