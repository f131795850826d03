"""Single sign-on with OpenID Connect (mozilla-django-oidc), and groups-to-teams mapping.

On when `OIDC_RP_CLIENT_ID` is set (see README, "Single sign-on"). The code flow with PKCE;
the ID token's signature (the provider's JWKS), issuer, audience and expiry are checked.

- A person is found by the token's `sub` (stored in `User.oidc_subject`), never by e-mail:
  a provider that lets people set any address cannot take over a local account.
- A new person gets an account named after `preferred_username` (made unique), with no
  usable password: they sign in through the provider only.
- Teams: `OIDC_GROUP_TEAMS` maps group names in the `OIDC_GROUPS_CLAIM` claim to a team
  and role (`ml-vision=vision:lead,ml-analysts=analytics`). At each sign-in the person's
  memberships of the *mapped* teams follow their groups (added, role changed, removed);
  teams nobody mapped are managed in Karimasu as before. Groups in `OIDC_ADMIN_GROUPS`
  make a site admin (staff); without one a previously SSO-made admin loses it.
- Local accounts keep working alongside (small labs, break-glass admins).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from portal.accounts.models import Membership, Team, User
from portal.accounts.services import forget_tokens

log = logging.getLogger("karimasu.accounts")

_USERNAME_JUNK = re.compile(r"[^\w.@+-]")


def enabled() -> bool:
    return bool(getattr(settings, "OIDC_RP_CLIENT_ID", ""))


def sync_teams(user: User, groups: list[str]) -> None:
    """Make the user's memberships of mapped teams match their groups (see module doc)."""
    mapping: dict[str, tuple[str, str]] = getattr(settings, "OIDC_GROUP_TEAMS", {})
    managed = {slug for slug, _ in mapping.values()}
    wanted: dict[str, str] = {}
    for group in groups:
        if group in mapping:
            slug, role = mapping[group]
            if wanted.get(slug) != Membership.Role.LEAD:  # lead wins over member
                wanted[slug] = role
    teams = {t.slug: t for t in Team.objects.filter(slug__in=managed)}
    for slug in sorted(set(wanted) - set(teams)):
        log.warning("oidc.unknown_team slug=%s (create it, or fix OIDC_GROUP_TEAMS)", slug)
    with transaction.atomic():
        current = {
            m.team.slug: m
            for m in Membership.objects.select_related("team").filter(
                user=user, team__slug__in=managed
            )
        }
        for slug, role in wanted.items():
            if slug not in teams:
                continue
            membership = current.get(slug)
            if membership is None:
                Membership.objects.create(team=teams[slug], user=user, role=role)
            elif membership.role != role:
                membership.role = role
                membership.save(update_fields=["role"])
        for slug, membership in current.items():
            if slug not in wanted:
                membership.delete()  # rotates the team's calendar feed (scheduler.apps)
    admin_groups = set(getattr(settings, "OIDC_ADMIN_GROUPS", []))
    if admin_groups:
        staff = bool(admin_groups & set(groups))
        if user.is_staff != staff:
            User.objects.filter(pk=user.pk).update(is_staff=staff)
            user.is_staff = staff
            forget_tokens(user_id=user.pk)


class KarimasuOIDCBackend(OIDCAuthenticationBackend):  # type: ignore[misc] # untyped library
    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        issuer = getattr(settings, "OIDC_OP_ISSUER", "")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if issuer and payload.get("iss") != issuer:
            raise SuspiciousOperation("ID token from another issuer.")
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("ID token for another client.")
        if float(payload.get("exp", 0)) < time.time() - 60:
            raise SuspiciousOperation("ID token expired.")
        if not payload.get("sub"):
            raise SuspiciousOperation("ID token without a subject.")
        self._token_payload = payload
        return payload

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        # The userinfo must describe the person the ID token names.
        return bool(claims.get("sub")) and claims["sub"] == self._token_payload.get("sub")

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return User.objects.filter(oidc_subject=str(claims["sub"]))

    def describe_user_by_claims(self, claims: dict[str, Any]) -> str:
        return f"subject {claims.get('sub')}"

    def create_user(self, claims: dict[str, Any]) -> User:
        base = _USERNAME_JUNK.sub("", str(claims.get("preferred_username") or ""))[:120]
        base = base or "user"
        username, n = base, 1
        while User.objects.filter(username__iexact=username).exists():
            n += 1
            username = f"{base}-{n}"
        user = User.objects.create_user(
            username, email=str(claims.get("email") or ""), oidc_subject=str(claims["sub"])
        )
        user.set_unusable_password()
        user.save(update_fields=["password"])
        log.info("oidc.user_created user=%s subject=%s", user.pk, claims["sub"])
        return self.update_user(user, claims)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        email = str(claims.get("email") or "")
        if email and claims.get("email_verified", True) and user.email != email:
            User.objects.filter(pk=user.pk).update(email=email)
            user.email = email
        claim = getattr(settings, "OIDC_GROUPS_CLAIM", "groups")
        groups = claims.get(claim, self._token_payload.get(claim, []))
        if isinstance(groups, str):
            groups = [groups]
        sync_teams(user, [str(g) for g in groups or []])
        return user


def _only_when_enabled(view: Any) -> Any:
    def wrapped(request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404(_("Single sign-on is not configured."))
        response: HttpResponse = view(request)
        return response

    return wrapped


authenticate_view = _only_when_enabled(OIDCAuthenticationRequestView.as_view())
callback_view = _only_when_enabled(OIDCAuthenticationCallbackView.as_view())
