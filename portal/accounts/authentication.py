"""`Authorization: Bearer <token>` for the API, with hashed personal tokens."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from portal.accounts import services


def bearer_token(request: Any) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when the request
    carries no Bearer header. A malformed one is AuthenticationFailed (401)."""
    parts = authentication.get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed(
            _("Malformed Authorization header: expected 'Bearer <token>'.")
        )
    try:
        return str(parts[1].decode("ascii"))
    except UnicodeDecodeError as exc:
        raise exceptions.AuthenticationFailed(_("Invalid token.")) from exc


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates a request carrying a personal API token.

    No Authorization header, or another scheme: not ours (None), so session auth may try.
    A Bearer header with a bad, expired or revoked token: 401, never a fallback.
    """

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        plaintext = bearer_token(request)
        if plaintext is None:
            return None
        token = services.authenticate_token(plaintext, now=timezone.now())
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."))
        _activate_language(request, token.user)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="karimasu"'


def _activate_language(request: Any, user: Any) -> None:
    """Answer a token-authenticated request in the user's saved language, unless the request
    names its own with ``Accept-Language`` (then LocaleMiddleware's choice stands). A session
    request gets the same from ``UserLanguageMiddleware``; a token one is only authenticated
    here, after the middleware ran."""
    if request.META.get("HTTP_ACCEPT_LANGUAGE") or not user.language:
        return
    if settings.LANGUAGE_COOKIE_NAME in request.COOKIES:
        return
    translation.activate(user.language)
    request._request.LANGUAGE_CODE = user.language


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "portal.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}
