"""Who may use what in the query gate: the one home of its access rules.

``access_*`` functions fetch and check in one call: they return the object (or the
user's ``Access`` to a warehouse) or raise (``NotFoundError`` for what the user may not
see, ``NotPermitted``/``WarehouseDenied`` for what they see but may not do). ``can_*``
answer yes or no for pages that only show or hide a control; ``visible_*`` are the
querysets lists start from. The API, the pages, the admin and the services all use these
(``tests/querygate/test_access_table.py`` is the persona x object x action table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from portal.accounts.access import is_team_lead
from portal.accounts.models import Membership, Team
from portal.errors import NotFoundError, NotPermitted
from querygate.analysis import Policy
from querygate.errors import WarehouseDenied
from querygate.models import Query, Warehouse, WarehouseGrant
from querygate.overrides import policy_from
from querygate.services.warehouses import runtime_budget

QueryAction = Literal["view", "results", "cancel"]


@dataclass(frozen=True)
class Access:
    """How ``user`` may use a warehouse: the team the query is accounted to (None for an
    admin or a user in no team), whether writes are allowed, and the policy."""

    warehouse: Warehouse
    team: Team | None
    allow_writes: bool
    policy: Policy
    is_admin: bool = False
    max_runtime_s: float = 300.0


def get_warehouse(name: str) -> Warehouse:
    try:
        return Warehouse.objects.get(name=name)
    except Warehouse.DoesNotExist:
        raise NotFoundError(_("Warehouse %(name)r not found.") % {"name": name}) from None


def access_warehouse(user: Any, warehouse: Warehouse, team_slug: str | None = None) -> Access:
    """The user's access to ``warehouse``; ``WarehouseDenied`` when there is none.

    Admins always have access (writes if ``admin_writes``). Others need a grant to one of
    their teams (``lead`` grants only leads) or an ``open_to_all`` warehouse; the query is
    accounted to the granting team, else to the user's first team (or ``team_slug``).
    """
    memberships = list(Membership.objects.filter(user=user).select_related("team"))
    if team_slug:
        memberships = [m for m in memberships if m.team.slug == team_slug]
        if not memberships and not user.is_staff:
            raise WarehouseDenied(_("You are not in team %(team)r.") % {"team": team_slug})
    if user.is_staff:
        team = memberships[0].team if memberships else None
        policy = policy_from(warehouse.policy, allow_writes=warehouse.admin_writes)
        return Access(
            warehouse,
            team,
            warehouse.admin_writes,
            policy,
            True,
            runtime_budget(warehouse, warehouse.policy),
        )
    if not warehouse.enabled:
        raise WarehouseDenied(_("Warehouse %(name)s is disabled.") % {"name": warehouse.name})
    roles = {m.team_id: m.role for m in memberships}
    grants = [
        g
        for g in WarehouseGrant.objects.filter(warehouse=warehouse, team_id__in=roles)
        .select_related("team")
        .order_by("team__slug")
        if g.role == WarehouseGrant.Role.MEMBER or roles[g.team_id] == Membership.Role.LEAD
    ]
    if grants:
        team = grants[0].team
        mine = [g for g in grants if g.team_id == team.pk]
        writes = any(g.allow_writes for g in mine)
        policy = policy_from(warehouse.policy, *(g.policy for g in mine), allow_writes=writes)
        runtime = runtime_budget(warehouse, warehouse.policy, *(g.policy for g in mine))
        return Access(warehouse, team, writes, policy, False, runtime)
    if warehouse.open_to_all and not WarehouseGrant.objects.filter(warehouse=warehouse).exists():
        team = memberships[0].team if memberships else None
        policy = policy_from(warehouse.policy, allow_writes=False)
        return Access(
            warehouse, team, False, policy, False, runtime_budget(warehouse, warehouse.policy)
        )
    raise WarehouseDenied(_("You have no access to warehouse %(name)s.") % {"name": warehouse.name})


def access_warehouse_named(user: Any, name: str, team_slug: str | None = None) -> Access:
    """``access_warehouse`` of the warehouse called ``name`` (``NotFoundError`` if none)."""
    return access_warehouse(user, get_warehouse(name), team_slug)


def visible_warehouses(user: Any) -> QuerySet[Warehouse]:
    """The warehouses ``user`` may query: admins all; others the enabled ones open to all or
    granted to one of their teams."""
    if user.is_staff:
        return Warehouse.objects.all()
    teams = Membership.objects.filter(user=user).values("team")
    granted = WarehouseGrant.objects.filter(team__in=teams).values("warehouse")
    with_grants = WarehouseGrant.objects.values("warehouse")
    return Warehouse.objects.filter(
        Q(open_to_all=True, enabled=True) & ~Q(pk__in=with_grants) | Q(pk__in=granted),
        enabled=True,
    )


def visible_queries(user: Any) -> QuerySet[Query]:
    """Own queries; a lead's team's queries; admins all."""
    rows = Query.objects.select_related("user", "team", "warehouse", "killed_by", "override_by")
    if user.is_staff:
        return rows
    led = Membership.objects.filter(user=user, role=Membership.Role.LEAD).values("team")
    return rows.filter(Q(user=user) | Q(team__in=led))


def access_query(user: Any, query_id: Any, action: QueryAction = "view") -> Query:
    """The query ``query_id`` if ``user`` may do ``action`` on it.

    ``view`` and ``results``: its owner, a lead of its team, an admin (others get
    ``NotFoundError``: not theirs to know about). ``cancel``: its owner, or an admin to kill
    it (a lead who can see a teammate's query gets ``NotPermitted``)."""
    try:
        query = visible_queries(user).get(pk=int(query_id))
    except (Query.DoesNotExist, TypeError, ValueError):
        raise NotFoundError(_("Query not found.")) from None
    if action == "cancel" and query.user_id != user.pk and not user.is_staff:
        raise NotPermitted(_("Only the query's owner or an admin can cancel it."))
    return query


def can_override(user: Any, team: Team | None) -> bool:
    """May ``user`` run a rejected query, accounted to ``team``, with a justification?
    Admins always; otherwise a lead of ``team``."""
    if user.is_staff:
        return True
    return team is not None and is_team_lead(user, team)


def can_override_somewhere(user: Any) -> bool:
    """Does the editor offer the override field? Admins and leads of any team."""
    if user.is_staff:
        return True
    return Membership.objects.filter(user=user, role=Membership.Role.LEAD).exists()


def can_manage_warehouses(user: Any) -> bool:
    """Refresh catalogs, see connections, kill anyone's query from the admin: admins."""
    return bool(user.is_staff)
