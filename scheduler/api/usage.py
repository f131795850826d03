"""The team view's numbers: a team's usage, every team's waste, a job's efficiency."""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import Team
from portal.errors import InvalidRequest, NotPermitted
from scheduler.services import access, usage


def _weeks(request: Request, default: int = 4) -> int:
    raw = request.query_params.get("weeks", str(default))
    try:
        weeks = int(raw)
    except ValueError:
        weeks = 0
    if not 1 <= weeks <= usage.MAX_WEEKS:
        message = _("weeks must be a whole number from 1 to %(most)d.") % {"most": usage.MAX_WEEKS}
        raise InvalidRequest(message, details={"weeks": [message]})
    return weeks


class TeamUsageView(APIView):
    """A team's quota, budget against use this week, running and waiting jobs (with why),
    live bookings, booked-vs-busy GPU-hours per week and its recent jobs' efficiency. The
    team's members and admins."""

    @extend_schema(
        parameters=[OpenApiParameter("weeks", int, description="1..12; default 4")],
        responses={200: dict},
    )
    def get(self, request: Request, slug: str) -> Response:
        team = access.access_team(request.user, slug, "view_usage")
        weeks = _weeks(request)
        return Response(usage.team_overview(team, now=timezone.now(), weeks=weeks))


class WasteView(APIView):
    """Booked, busy and wasted GPU-hours of every team per week: admins and team leads."""

    @extend_schema(
        parameters=[OpenApiParameter("weeks", int, description="1..12; default 4")],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        if not access.can_compare_teams(request.user):
            raise NotPermitted(_("Only team leads and admins compare every team's usage."))
        weeks = _weeks(request)
        rows = usage.waste_by_team(Team.objects.all(), weeks=weeks, now=timezone.now())
        return Response({"weeks": weeks, "results": rows})


class JobEfficiencyView(APIView):
    """A job's efficiency, like Slurm's ``seff``: whoever may see the job."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: str) -> Response:
        job = access.access_job(request.user, pk)
        return Response(usage.job_efficiency(job, now=timezone.now()))
