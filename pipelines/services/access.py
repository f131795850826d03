"""Who may see, change and run a pipeline, and see a dataset: one place (as
``scheduler.services.access`` for jobs). Members of the pipeline's team see and run it;
its owner, the team's leads and admins change it; admins see every team's."""

from __future__ import annotations

from typing import Any, Literal

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from pipelines.models import Dataset, Pipeline
from portal.accounts.access import is_member, is_member_or_admin, may_manage
from portal.accounts.models import Team
from portal.errors import NotFoundError, NotPermitted

PipelineAction = Literal["view", "run", "change"]


def require_member(user: Any, team_slug: str) -> Team:
    team = Team.objects.filter(slug=team_slug).first()
    if team is None or not is_member_or_admin(user, team):
        raise NotPermitted(_("You are not a member of team %(team)s.") % {"team": team_slug})
    return team


def visible_pipelines(user: Any) -> QuerySet[Pipeline]:
    rows = Pipeline.objects.select_related("team", "owner")
    if user.is_staff:
        return rows
    return rows.filter(team__memberships__user=user).distinct()


def access_pipeline(user: Any, pipeline_id: Any, action: PipelineAction = "view") -> Pipeline:
    """The pipeline, or NotFound when the user may not see it, NotPermitted when they may
    see it but not do ``action``."""
    try:
        pipeline = visible_pipelines(user).get(pk=int(pipeline_id))
    except (Pipeline.DoesNotExist, TypeError, ValueError):
        raise NotFoundError(_("No pipeline %(id)s.") % {"id": pipeline_id}) from None
    if action == "change" and not may_manage(
        user, owner_id=pipeline.owner_id, team_id=pipeline.team_id
    ):
        raise NotPermitted(_("Only the pipeline's owner, the team's leads and admins change it."))
    if action == "run" and not (user.is_staff or is_member(user, pipeline.team_id)):
        raise NotPermitted(_("Only members of the pipeline's team run it."))
    return pipeline


def visible_datasets(user: Any) -> QuerySet[Dataset]:
    rows = Dataset.objects.select_related("team", "owner")
    if user.is_staff:
        return rows
    return rows.filter(team__memberships__user=user).distinct()
