"""The language to answer a request in where Django's locale handling cannot decide it.

Pages and the API normally get their language from the middleware chain (the switcher's
cookie, the signed-in user's saved language, then ``Accept-Language``) and, for a Bearer
token, from the authentication class once DRF authenticates. Some answers are made before
or outside that chain: the API middleware's early refusals (a NUL in the URL, a body too
large), Django's own errors turned into JSON (an unknown endpoint, a Host not allowed), DRF
errors raised before authentication (content negotiation), and the session proxy, which is
an ASGI app of its own. They ask here, only on those error paths (it may read the token or
the session).

Order, as elsewhere: the language cookie; then, for a Bearer token, ``Accept-Language``
before the token user's saved language (what the API does); for a session cookie, the
user's saved language before ``Accept-Language`` (what pages do); else the site's.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone, translation


def request_language(request: HttpRequest, user: Any = None, *, via: str = "") -> str:
    """The language for an answer to ``request``; ``user`` (and ``via``: "token" or
    "cookie") when the caller already knows who asks, else the request's Bearer token or
    session cookie is read."""
    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    if cookie and translation.check_for_language(cookie):
        return translation.get_language_from_request(request)
    how = via
    if user is None:
        user, how = _user_of(request)
    saved = getattr(user, "language", "") if user is not None else ""
    named = bool(request.META.get("HTTP_ACCEPT_LANGUAGE"))
    if saved and translation.check_for_language(saved) and not (how == "token" and named):
        return str(saved)
    return translation.get_language_from_request(request)


def _user_of(request: HttpRequest) -> tuple[Any, str]:
    """(user or None, "token" | "cookie" | ""): who the request says it is, never raising
    (a malformed or dead credential is someone else's refusal to make)."""
    from portal.accounts.services import authenticate_token, session_user

    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization[:7].lower() == "bearer ":
        try:
            token = authenticate_token(authorization[7:].strip(), now=timezone.now())
        except Exception:
            return None, ""
        return (token.user, "token") if token is not None else (None, "")
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None, ""
    try:
        user = session_user(key)
    except Exception:  # as above: never fail the answer
        return None, ""
    return (user, "cookie") if user is not None else (None, "")
