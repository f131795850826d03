"""Booking API: reservations, borrow-now, availability, team policies, maintenance windows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import Team
from portal.errors import InvalidRequest, NotPermitted
from scheduler.api import serializers as s
from scheduler.api.policy import IsAdminOrReadOnly
from scheduler.models import (
    LIVE_STATUSES,
    MaintenanceWindow,
    Node,
    Reservation,
    ReservationSlot,
)
from scheduler.services import (
    access,
    availability,
    booking_policy,
    calendar,
    calendar_view,
    reservations,
    webhooks,
)


def _team(slug: str) -> Team:
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise InvalidRequest(
            _("No team %(team)r.") % {"team": slug}, details={"team": [_("Unknown team.")]}
        )
    return team


class ReservationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """GPU bookings. Everyone signed in sees who holds what (purposes stay private to the
    holder's team). Filters: `?node=`, `?team=`, `?mine=1`, `?include_past=1`."""

    serializer_class = s.ReservationSerializer
    queryset = Reservation.objects.none()

    def get_queryset(self) -> Any:
        params = self.request.query_params
        rows = Reservation.objects.select_related("holder", "team", "node").prefetch_related(
            Prefetch("slots", queryset=ReservationSlot.objects.select_related("gpu"))
        )
        if params.get("include_past") not in ("1", "true"):
            rows = rows.filter(status__in=LIVE_STATUSES, end__gt=timezone.now())
        if params.get("node"):
            rows = rows.filter(node__name=params["node"])
        if params.get("team"):
            rows = rows.filter(team__slug=params["team"])
        if params.get("mine") in ("1", "true"):
            rows = rows.filter(holder=self.request.user)
        return rows.order_by("start", "pk")

    @extend_schema(request=s.ReservationCreateSerializer, responses={201: s.ReservationSerializer})
    def create(self, request: Request) -> Response:
        form = s.ReservationCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        node = Node.objects.filter(name=data["node"]).first()
        if node is None:
            raise InvalidRequest(
                _("No node %(node)r.") % {"node": data["node"]}, details={"node": [_("Unknown.")]}
            )
        reservation = reservations.reserve_gpus(
            request.user,
            team=_team(data["team"]),
            node=node,
            gpu_indices=data["gpus"],
            start=data["start"],
            end=data["end"],
            purpose=data["purpose"],
            shared_with_team=data["shared_with_team"],
            now=timezone.now(),
        )
        return self._created(reservation)

    @extend_schema(
        request=s.BorrowSerializer,
        responses={201: s.ReservationSerializer},
        summary="Borrow N GPUs from now for H hours (Karimasu picks them)",
    )
    @action(detail=False, methods=["post"])
    def borrow(self, request: Request) -> Response:
        form = s.BorrowSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        reservation = availability.borrow_now(
            request.user,
            team=_team(data["team"]),
            gpus=data["gpus"],
            model=data["model"] or None,
            hours=data["hours"],
            purpose=data["purpose"],
            shared_with_team=data["shared_with_team"],
            now=timezone.now(),
        )
        return self._created(reservation)

    @extend_schema(
        request=s.ReservationChangeSerializer,
        responses=s.ReservationSerializer,
        summary="Extend, shorten, or move the start of a booking",
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        form = s.ReservationChangeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        reservation = reservations.change_reservation(
            request.user, self.get_object(), now=timezone.now(), **form.validated_data
        )
        return Response(self._data(reservation.pk))

    @extend_schema(
        request=None,
        responses=s.ReservationSerializer,
        summary="Give the GPUs back now (cancels a booking that has not begun)",
    )
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        reservation = reservations.end_reservation(
            request.user, self.get_object(), now=timezone.now()
        )
        return Response(self._data(reservation.pk))

    @extend_schema(responses={204: None}, summary="Release or cancel")
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        reservations.end_reservation(request.user, self.get_object(), now=timezone.now())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses=s.ReservationSerializer,
        summary="Admins: exempt a booking from idle auto-release",
    )
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAdminUser])
    def exempt(self, request: Request, pk: str | None = None) -> Response:
        reservation = self.get_object()
        Reservation.objects.filter(pk=reservation.pk).update(idle_exempt=True)
        return Response(self._data(reservation.pk))

    def get_object(self) -> Reservation:
        # Detail views find any booking (past ones too), not only the list's default window.
        return get_object_or_404(
            Reservation.objects.select_related("holder", "team", "node"), pk=self.kwargs["pk"]
        )

    def _data(self, pk: int) -> dict[str, Any]:
        row = (
            Reservation.objects.select_related("holder", "team", "node")
            .prefetch_related(
                Prefetch("slots", queryset=ReservationSlot.objects.select_related("gpu"))
            )
            .get(pk=pk)
        )
        return s.ReservationSerializer(row, context=self.get_serializer_context()).data

    def _created(self, reservation: Reservation) -> Response:
        return Response(self._data(reservation.pk), status=status.HTTP_201_CREATED)


class AvailabilityView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("gpus", int),
            OpenApiParameter("model", str),
            OpenApiParameter("from", str, description="ISO 8601; default now"),
            OpenApiParameter("to", str, description="ISO 8601; default from + 7 days"),
        ],
        responses=s.FreeSlotSerializer(many=True),
        summary="Free slots per node: where N GPUs (of a model) are free together",
    )
    def get(self, request: Request) -> Response:
        query = dict(request.query_params.items())
        if "from" in query:
            query["start"] = query.pop("from")
        form = s.AvailabilityQuerySerializer(data=query)
        form.is_valid(raise_exception=True)
        now = timezone.now()
        start = form.validated_data.get("start") or now
        end = form.validated_data.get("to") or start + timedelta(days=7)
        slots = availability.free_slots(
            gpus=form.validated_data["gpus"],
            model=form.validated_data["model"] or None,
            start=start,
            end=end,
            now=now,
        )
        return Response(s.FreeSlotSerializer(slots, many=True).data)


class CalendarView(APIView):
    """The bookings calendar's data: every present GPU (``groups``) and the bookings, jobs
    holding GPUs and maintenance windows on them (``items``) in ``[from, from + days)``.
    Everyone signed in sees who holds what (the board is shared); purposes and job names
    only where ``access`` allows."""

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="YYYY-MM-DD; default today"),
            OpenApiParameter("days", int, description="1..31; default 7"),
        ],
        responses={200: dict},
        summary="GPU rows with their bookings, jobs and maintenance over a span of days",
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        try:
            span = calendar_view.span_from(
                request.query_params.get("from"), request.query_params.get("days"), now=now
            )
        except ValueError as error:
            raise InvalidRequest(
                _("Bad calendar span: %(why)s") % {"why": error},
                details={"from": [str(error)]},
            ) from None
        return Response(calendar_view.calendar_data(request.user, span, now=now))


class TeamPolicyView(APIView):
    """A team's booking policy: members read it (the webhook URL masked: it is a
    credential), leads and admins see the webhook and change the policy."""

    @extend_schema(responses=s.TeamPolicySerializer)
    def get(self, request: Request, slug: str) -> Response:
        team = access.access_team(request.user, slug, "view_policy")
        data = s.TeamPolicySerializer(booking_policy.policy_of(team)).data
        if not access.can_see_webhook(request.user, team):
            data["slack_webhook_url"] = webhooks.mask(data["slack_webhook_url"])
        return Response(data)

    @extend_schema(request=s.TeamPolicySerializer, responses=s.TeamPolicySerializer)
    def patch(self, request: Request, slug: str) -> Response:
        team = access.access_team(request.user, slug, "change_policy")
        form = s.TeamPolicySerializer(
            booking_policy.policy_of(team), data=request.data, partial=True
        )
        form.is_valid(raise_exception=True)
        form.save()
        return Response(form.data)


class CalendarFeedsView(APIView):
    """Your iCalendar feed URLs (yours and your teams'); POST rotates one."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(self._feeds(request))

    @extend_schema(
        request=dict,
        responses={200: dict},
        summary='Rotate a feed secret: {"team": "<slug>"} or {} for your own',
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise InvalidRequest(
                _('Expected {"team": "<slug>"} or {}.'),
                details={"non_field_errors": [_("Expected a JSON object.")]},
            )
        slug = request.data.get("team")
        if slug is not None and not isinstance(slug, str):
            raise InvalidRequest(_("'team' must be a team's slug."), details={"team": ["string"]})
        if slug:
            team = get_object_or_404(Team, slug=slug, memberships__user=request.user)
            if not access.can_on_team(request.user, team, "rotate_feed"):
                raise NotPermitted(_("Only the team's leads and admins rotate its feed."))
            calendar.feed_secret(team, rotate=True)
        else:
            calendar.feed_secret(request.user, rotate=True)
        return Response(self._feeds(request))

    @staticmethod
    def _feeds(request: Request) -> dict[str, Any]:
        def url(secret: str) -> str:
            return request.build_absolute_uri(f"/calendar/{secret}.ics")

        teams = Team.objects.filter(memberships__user=request.user).order_by("slug")
        return {
            "user": url(calendar.feed_secret(request.user)),
            "teams": [{"team": t.slug, "url": url(calendar.feed_secret(t))} for t in teams],
        }


class MaintenanceWindowViewSet(viewsets.ModelViewSet):
    """Windows in which nothing may be booked (admins write, everyone reads)."""

    serializer_class = s.MaintenanceWindowSerializer
    permission_classes = [permissions.IsAuthenticated, IsAdminOrReadOnly]
    queryset = MaintenanceWindow.objects.select_related("node").all()

    # A window over live bookings tells their holders (as the admin screen does).
    def perform_create(self, serializer: Any) -> None:
        reservations.warn_of_maintenance(serializer.save())

    def perform_update(self, serializer: Any) -> None:
        reservations.warn_of_maintenance(serializer.save())


__all__ = ["AvailabilityView", "MaintenanceWindowViewSet", "ReservationViewSet", "TeamPolicyView"]
