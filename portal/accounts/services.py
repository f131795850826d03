"""The one write path for accounts: tokens and team membership.

Every function takes `now` where time matters and raises portal.errors exceptions that
the API turns into JSON errors.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from portal.accounts.access import require_lead
from portal.accounts.models import ApiToken, Membership, Team, User
from portal.errors import Conflict, InvalidRequest, NotFoundError, NotPermitted

log = logging.getLogger("karimasu.accounts")

TOKEN_PREFIX = "kms_"  # noqa: S105 (a public prefix, not a secret)
# How often `last_used_at` is written at most: one UPDATE a minute per token, not per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Dead (revoked or expired) tokens are kept this long for the audit trail, then purged.
DEAD_TOKEN_RETENTION = timedelta(days=30)
MAX_TOKEN_LIFETIME = timedelta(days=366)


def token_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


# --- Tokens ---------------------------------------------------------------------------


def create_api_token(
    user: User, *, name: str, now: datetime, expires_in: timedelta | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its plaintext, which is never stored.

    Raises InvalidRequest for a blank name or a lifetime out of range, Conflict when the
    user already has a live token with that name.
    """
    name = name.strip()
    if not name:
        raise InvalidRequest(
            _("A token needs a name."), details={"name": [_("This field is required.")]}
        )
    if expires_in is not None and not (timedelta(0) < expires_in <= MAX_TOKEN_LIFETIME):
        raise InvalidRequest(
            _("A token lives between 1 day and %(days)s days.") % {"days": MAX_TOKEN_LIFETIME.days},
            details={"expires_in_days": [_("Out of range.")]},
        )
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=user,
                name=name,
                prefix=plaintext[: len(TOKEN_PREFIX) + 6],
                digest=token_digest(plaintext),
                created_at=now,
                expires_at=now + expires_in if expires_in else None,
            )
    except IntegrityError as exc:
        raise Conflict(
            _("You already have a live token named %(name)s.") % {"name": name},
            details={"name": name},
        ) from exc
    log.info("token.created user=%s token=%s", user.pk, token.pk)
    return token, plaintext


def _token_cache_key(digest: str) -> str:
    return f"apitoken:{digest}"


def forget_tokens(*, digests: list[str] | None = None, user_id: int | None = None) -> None:
    """Drop cached token lookups: these digests, or every token of this user."""
    if user_id is not None:
        digests = [
            *(digests or []),
            *ApiToken.objects.filter(user_id=user_id).values_list("digest", flat=True),
        ]
    if digests:
        cache.delete_many([_token_cache_key(d) for d in digests])


def authenticate_token(plaintext: str, *, now: datetime) -> ApiToken | None:
    """The live token with this plaintext, or None. Records its use (at most once a minute).

    A live token found in the database is kept in the cache for
    `KARIMASU_TOKEN_CACHE_SECONDS` (the notebooks' hot path then costs one cache read, not
    a query). Revoking a token, and saving or deleting a token or a user, drop the entries
    at once (`forget_tokens`, and the signals in `portal.accounts.apps`); expiry is checked
    on every request.
    """
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 128:
        return None
    digest = token_digest(plaintext)
    seconds = float(getattr(settings, "KARIMASU_TOKEN_CACHE_SECONDS", 30))
    key = _token_cache_key(digest)
    token: ApiToken | None = cache.get(key) if seconds > 0 else None
    if token is None:
        token = (
            ApiToken.objects.select_related("user")
            .filter(digest=digest, revoked_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .first()
        )
        if token is None or not token.user.is_active:
            return None
        if seconds > 0:
            cache.set(key, token, seconds)
    elif (token.expires_at is not None and token.expires_at <= now) or not token.user.is_active:
        return None
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        if seconds > 0:
            cache.set(key, token, seconds)
    return token


def session_user(key: str) -> User | None:
    """The active user signed in with the session cookie ``key``, or None: for answers
    made outside Django's middleware (the session proxy, early API refusals)."""
    from django.contrib.auth import get_user
    from django.http import HttpRequest
    from django.utils.module_loading import import_string

    store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    probe = HttpRequest()
    probe.session = store(key)
    user = get_user(probe)
    if not user.is_authenticated or not user.is_active:
        return None
    return user


def revoke_api_token(user: User, token_id: int, *, now: datetime) -> ApiToken:
    """Revoke one of the user's own tokens. Revoking twice is not an error.

    Another user's token is NotFoundError, the same as a missing one, so ids leak nothing.
    """
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFoundError(_("No such token."))
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    forget_tokens(digests=[token.digest])
    token.refresh_from_db()
    log.info("token.revoked user=%s token=%s", user.pk, token.pk)
    return token


def purge_dead_tokens(*, now: datetime) -> int:
    """Delete tokens revoked or expired more than DEAD_TOKEN_RETENTION ago; return how many."""
    cutoff = now - DEAD_TOKEN_RETENTION
    deleted, _ = ApiToken.objects.filter(
        Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff)
    ).delete()
    if deleted:
        log.info("token.purged count=%s", deleted)
    return deleted


# --- Preferences ----------------------------------------------------------------------


def set_language(user: User, language: str) -> None:
    """Save the language pages and notifications use for this user."""
    if language not in User.Language.values:
        raise InvalidRequest(
            _("Unsupported language %(language)s.") % {"language": language},
            details={"language": User.Language.values},
        )
    User.objects.filter(pk=user.pk).update(language=language)
    user.language = language
    forget_tokens(user_id=user.pk)  # a cached token lookup holds the user as it was


def zone_or_none(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name``, or None when it is empty or unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def set_time_zone(user: User, name: str) -> None:
    """Save the IANA time zone the pages use for ``user`` ("" for the site's)."""
    if name and zone_or_none(name) is None:
        raise InvalidRequest(
            _("Unknown time zone %(name)s.") % {"name": name}, details={"time_zone": [name]}
        )
    user.time_zone = name
    user.save(update_fields=["time_zone"])
    forget_tokens(user_id=user.pk)


# --- Teams ----------------------------------------------------------------------------


def create_team(actor: User, *, slug: str, name: str, description: str = "") -> Team:
    if not actor.is_staff:
        raise NotPermitted(_("Only site admins can create teams."))
    try:
        with transaction.atomic():
            team = Team.objects.create(slug=slug, name=name, description=description)
    except IntegrityError as exc:
        raise Conflict(_("A team with slug %(slug)s already exists.") % {"slug": slug}) from exc
    log.info("team.created team=%s by=%s", team.slug, actor.pk)
    return team


def add_member(actor: User, team: Team, *, user: User, role: str) -> Membership:
    require_lead(actor, team)
    if role not in Membership.Role.values:
        raise InvalidRequest(
            _("Unknown role %(role)s.") % {"role": role}, details={"role": Membership.Role.values}
        )
    try:
        with transaction.atomic():
            membership = Membership.objects.create(team=team, user=user, role=role)
    except IntegrityError as exc:
        raise Conflict(
            _("%(user)s is already in %(team)s.") % {"user": user.username, "team": team.slug}
        ) from exc
    log.info("team.member_added team=%s user=%s role=%s by=%s", team.slug, user.pk, role, actor.pk)
    return membership


def _lock(membership: Membership) -> Membership:
    """Lock the team, then re-read the membership (404 if it went meanwhile).

    Every change of a team's members takes the team's row first: two leads demoting or
    removing each other at once used to lock their own rows and then wait for each other's
    (a deadlock, answered 500); now the second waits for the first and sees its result.
    """
    Team.objects.select_for_update().filter(pk=membership.team_id).exists()
    try:
        return Membership.objects.select_for_update().get(pk=membership.pk)
    except Membership.DoesNotExist as exc:
        raise NotFoundError(_("Not a member of this team (any more).")) from exc


def change_role(actor: User, membership: Membership, *, role: str) -> Membership:
    require_lead(actor, membership.team)
    if role not in Membership.Role.values:
        raise InvalidRequest(
            _("Unknown role %(role)s.") % {"role": role}, details={"role": Membership.Role.values}
        )
    with transaction.atomic():
        locked = _lock(membership)
        require_lead(actor, membership.team)  # the actor may just have been demoted
        if locked.role == Membership.Role.LEAD and role != Membership.Role.LEAD:
            _keep_one_lead(locked)
        locked.role = role
        locked.save(update_fields=["role"])
    return locked


def remove_member(actor: User, membership: Membership) -> None:
    require_lead(actor, membership.team)
    with transaction.atomic():
        locked = _lock(membership)
        require_lead(actor, membership.team)  # the actor may just have been demoted
        if locked.role == Membership.Role.LEAD:
            _keep_one_lead(locked)
        locked.delete()
    log.info(
        "team.member_removed team=%s user=%s by=%s",
        membership.team.slug,
        membership.user_id,
        actor.pk,
    )


def _keep_one_lead(leaving: Membership) -> None:
    """A team keeps at least one lead, or nobody but admins could manage it."""
    others = Membership.objects.filter(team_id=leaving.team_id, role=Membership.Role.LEAD).exclude(
        pk=leaving.pk
    )
    if not others.exists():
        raise Conflict(_("A team must keep at least one lead; appoint another lead first."))
