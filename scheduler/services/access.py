"""Who may see or change what in the scheduler: jobs, sweeps, bookings, team policies and
quotas, priority choices. The one home of these rules.

``access_*`` fetch and check in one call and return the object or raise: ``NotFoundError``
for what the user may not see (not theirs to know about), ``NotPermitted`` for what they
see but may not do. ``can_*`` answer yes or no (pages that show or hide a control);
``visible_*`` are the querysets lists start from. The API, the pages, the admin and the
services all use these (``tests/scheduler/test_access_table.py`` is the persona x object x
action table). Membership facts ("lead", "member") come from ``portal.accounts.access``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.accounts.access import is_member, is_member_or_admin, is_team_lead, may_manage
from portal.accounts.models import Membership, Team
from portal.errors import NotFoundError, NotPermitted
from scheduler.models import Job, PriorityClass, Reservation, Session, Sweep, TeamQuota

JobAction = Literal["view", "manage"]
ReservationAction = Literal["view", "manage"]
TeamAction = Literal[
    "view_policy", "change_policy", "rotate_feed", "view_quota", "change_quota", "view_usage"
]


def _pk(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFoundError(_("Not found.")) from None


# --- jobs and sweeps ----------------------------------------------------------------------


def visible_jobs(user: Any, jobs: QuerySet[Any] | None = None) -> QuerySet[Any]:
    """The jobs a user may see: their own and their teams'; admins see all.

    ``jobs``: the queryset to restrict (default: every job, with its owner, team and node;
    the jobs list passes its plain-row query).
    """
    if jobs is None:
        jobs = Job.objects.select_related("owner", "team", "node")
    if user.is_staff:
        return jobs
    # A subquery, not a join: no DISTINCT, so counting a page is a plain COUNT(*).
    teams = Membership.objects.filter(user=user).values("team_id")
    return jobs.filter(Q(owner=user) | Q(team_id__in=teams))


def can_manage_job(user: Any, job: Job) -> bool:
    """Cancel it, change it: the owner, the team's leads, admins."""
    return may_manage(user, owner_id=job.owner_id, team_id=job.team_id)


def access_job(user: Any, job_id: Any, action: JobAction = "view") -> Job:
    """The job ``job_id`` if ``user`` may ``view`` it (owner, teammates, admins; logs and
    utilization too) or ``manage`` it (``can_manage_job``)."""
    job: Job | None = visible_jobs(user).filter(pk=_pk(job_id)).first()
    if job is None:
        raise NotFoundError(_("Job not found."))
    if action == "manage" and not can_manage_job(user, job):
        raise NotPermitted(_("Only the job's owner, its team's leads and admins can change it."))
    return job


def can_manage_sweep(user: Any, sweep: Sweep) -> bool:
    return may_manage(user, owner_id=sweep.owner_id, team_id=sweep.team_id)


# --- bookings -----------------------------------------------------------------------------


def can_book_for(user: Any, team: Team) -> bool:
    """Book or borrow GPUs charged to ``team``: its members and admins."""
    return is_member_or_admin(user, team)


def can_manage_reservation(user: Any, reservation: Reservation) -> bool:
    """Change or end it: the holder, the leads of the team it is charged to, admins."""
    return may_manage(user, owner_id=reservation.holder_id, team_id=reservation.team_id)


def access_reservation(
    user: Any, reservation_id: Any, action: ReservationAction = "view"
) -> Reservation:
    """Every signed-in user sees who holds what (the board is shared); ``manage`` is
    ``can_manage_reservation``."""
    reservation = (
        Reservation.objects.select_related("holder", "team", "node")
        .filter(pk=_pk(reservation_id))
        .first()
    )
    if reservation is None:
        raise NotFoundError(_("Booking not found."))
    if action == "manage" and not can_manage_reservation(user, reservation):
        raise NotPermitted(
            _("Only the holder, the team's leads and admins can change this booking.")
        )
    return reservation


def can_see_purpose(
    user: Any, reservation: Reservation, team_ids: Collection[int] | None = None
) -> bool:
    """Admins, the holder and the booking's team see its purpose. ``team_ids``: the user's
    teams, when the caller already has them (a calendar asks for many bookings)."""
    if user.is_staff or reservation.holder_id == user.pk:
        return True
    if team_ids is not None:
        return reservation.team_id in team_ids
    return is_member(user, reservation.team_id)


# --- teams: booking policy, calendar feed, quota, priorities -------------------------------

_TEAM_RULES: dict[str, tuple[str, Any]] = {
    # action: (who, refusal)
    "view_policy": ("member", gettext_lazy("Only the team's members and admins see its policy.")),
    "change_policy": (
        "lead",
        gettext_lazy("Only the team's leads and admins can change its policy."),
    ),
    "rotate_feed": ("lead", gettext_lazy("Only the team's leads and admins rotate its feed.")),
    "view_quota": ("member", gettext_lazy("Only the team's members and admins see its quota.")),
    "change_quota": ("admin", gettext_lazy("Only admins change quotas.")),
    "view_usage": ("member", gettext_lazy("Only the team's members and admins see its usage.")),
}


def can_on_team(user: Any, team: Team, action: TeamAction) -> bool:
    who = _TEAM_RULES[action][0]
    if who == "member":
        return is_member_or_admin(user, team)
    if who == "lead":
        return is_team_lead(user, team)
    return bool(user.is_staff)


def access_team(user: Any, slug: str, action: TeamAction) -> Team:
    """The team ``slug`` if ``user`` may do ``action`` on it (members read its policy and
    quota; leads change its policy and rotate its feed; admins change quotas, since a
    guarantee is a cluster-wide promise)."""
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise NotFoundError(_("Team not found."))
    if not can_on_team(user, team, action):
        raise NotPermitted(str(_TEAM_RULES[action][1]))
    return team


def can_view_team(user: Any, team: Team) -> bool:
    """The team page and its usage numbers (quota, budget, jobs, bookings, waiting,
    efficiency): the team's members and admins."""
    return can_on_team(user, team, "view_usage")


def can_compare_teams(user: Any) -> bool:
    """Booked-vs-used and waste of every team, side by side: admins and the leads of any
    team (they answer for their team's share of the cluster)."""
    if user.is_staff:
        return True
    return Membership.objects.filter(user=user, role=Membership.Role.LEAD).exists()


def can_see_webhook(user: Any, team: Team) -> bool:
    """A webhook URL is a credential: leads and admins see it, members see it masked."""
    return is_team_lead(user, team)


def may_use_priority(
    user: Any, team: Team, quota: TeamQuota | None, priority: PriorityClass
) -> bool:
    """Members run at the default priority or a class their team's quota lists in
    ``member_priority_classes``; other classes are for leads and admins."""
    if priority.is_default or is_team_lead(user, team):
        return True
    return priority.name in set(quota.member_priority_classes if quota is not None else [])


def may_run_unpreemptible(user: Any, team: Team) -> bool:
    """Jobs that cannot be preempted: leads and admins (within the guarantee, checked by
    submission)."""
    return is_team_lead(user, team)


# --- interactive sessions -----------------------------------------------------------------

SessionAction = Literal["view", "manage", "open"]


def visible_sessions(user: Any) -> QuerySet[Any]:
    """The sessions a user may see: their own; their teams' leads see the team's; admins
    see all. A session's contents (``open``) are its owner's alone."""
    rows = Session.objects.select_related(
        "job", "job__node", "job__team", "owner", "workspace", "reservation"
    )
    if user.is_staff:
        return rows
    led = Membership.objects.filter(user=user, role=Membership.Role.LEAD).values("team_id")
    return rows.filter(Q(owner=user) | Q(job__team_id__in=led))


def can_open_session(user: Any, session: Session) -> bool:
    """Reach the workspace itself (``/s/<id>/``): its owner only. Not the team's leads, not
    admins: a workspace holds the owner's code, data and credentials (admins stop it)."""
    return bool(user.is_authenticated and user.is_active and session.owner_id == user.pk)


def can_manage_session(user: Any, session: Session) -> bool:
    """Stop or extend it: the owner, the team's leads, admins."""
    return may_manage(user, owner_id=session.owner_id, team_id=session.job.team_id)


def access_session(user: Any, session_id: Any, action: SessionAction = "view") -> Session:
    """The session ``session_id`` if ``user`` may ``view`` it, ``manage`` it (stop,
    extend) or ``open`` it (its owner only). Others' sessions are not found."""
    session: Session | None = visible_sessions(user).filter(pk=_pk(session_id)).first()
    if session is None:
        raise NotFoundError(_("Session not found."))
    if action == "manage" and not can_manage_session(user, session):
        raise NotPermitted(
            _("Only the session's owner, its team's leads and admins can change it.")
        )
    if action == "open" and not can_open_session(user, session):
        raise NotPermitted(_("Only the session's owner can open it."))
    return session
