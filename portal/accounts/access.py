"""Who is who in a team: the membership facts every app's access rules are built from.

Each app keeps its own access module (``scheduler.services.access``,
``querygate.services.access``) for its objects; they all ask these questions here, so
"lead", "member" and "the owner, a lead or an admin" mean the same everywhere.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from portal.accounts.models import Membership, Team
from portal.errors import NotPermitted


def visible_teams(user: Any) -> QuerySet[Team]:
    """Teams the user may see: their own; admins see all."""
    if user.is_staff:
        return Team.objects.all()
    return Team.objects.filter(memberships__user=user).distinct()


def is_member(user: Any, team: Team | int) -> bool:
    """A member (any role) of ``team`` (a Team or its id)."""
    team_id = team if isinstance(team, int) else team.pk
    return Membership.objects.filter(team_id=team_id, user=user).exists()


def is_team_lead(user: Any, team: Team | int) -> bool:
    """A lead of ``team``, or an admin."""
    if user.is_staff:
        return True
    team_id = team if isinstance(team, int) else team.pk
    return Membership.objects.filter(team_id=team_id, user=user, role=Membership.Role.LEAD).exists()


def is_member_or_admin(user: Any, team: Team | int) -> bool:
    return bool(user.is_staff) or is_member(user, team)


def may_manage(user: Any, *, owner_id: int, team_id: int) -> bool:
    """Who may change something a person owns on behalf of a team (a job, a booking, a
    sweep): the owner, the team's leads, and admins."""
    if user.is_staff or owner_id == user.pk:
        return True
    return is_team_lead(user, team_id)


def require_lead(actor: Any, team: Team) -> None:
    """``NotPermitted`` unless ``actor`` leads ``team`` (or is an admin)."""
    if not is_team_lead(actor, team):
        raise NotPermitted(_("Only the team's leads and site admins can change its members."))
