"""People, teams and API tokens.

A user belongs to teams through `Membership` with a role: a *lead* manages the team
(members, and in later issues its quotas and bookings); a *member* works in it. Site
admins are Django staff. API tokens are stored as SHA-256 digests: the plaintext is shown
once, at creation, and cannot be recovered.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """Django's user plus the language notifications and pages use, and the time zone the
    pages use."""

    class Language(models.TextChoices):
        ENGLISH = "en", _("English")
        JAPANESE = "ja", _("Japanese")

    language = models.CharField(max_length=8, choices=Language.choices, default=Language.ENGLISH)
    #: IANA time zone the pages show and read times in (``Asia/Tokyo``); empty: the site's.
    time_zone = models.CharField(max_length=64, blank=True, default="")
    # Secret part of the user's iCalendar feed URL (bookings in Google Calendar, Outlook).
    calendar_secret = models.CharField(max_length=64, blank=True, db_index=True)
    #: The OpenID Connect subject (`sub`) of a person who signs in through single sign-on;
    #: null for local accounts. SSO finds its user by this, never by e-mail address.
    oidc_subject = models.CharField(max_length=255, null=True, blank=True, unique=True)

    class Meta:
        db_table = "accounts_user"


class Team(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", _("Member")
        LEAD = "lead", _("Lead")

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user")
        ]
        ordering = ["team__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class ApiToken(models.Model):
    """A personal API token. `digest` is sha256(plaintext); `prefix` identifies it in lists."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A user cannot have two live tokens with the same name; revoked ones keep theirs.
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=Q(revoked_at__isnull=True),
                name="apitoken_unique_live_name",
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_live(self, now) -> bool:  # type: ignore[no-untyped-def]
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
