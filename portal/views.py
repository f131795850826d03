"""Server-rendered pages of the portal shell (the home dashboard)."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from portal.accounts.models import Membership
from portal.live import render_live
from scheduler import states
from scheduler.models import LIVE_STATUSES, Job, Reservation, attach_queue_places
from scheduler.services.board import gpu_board

# What the dashboard refreshes without a reload (portal/live.py).
HOME_REGIONS = {
    "board": "portal/_board.html",
    "my-jobs": "portal/_my_jobs.html",
    "my-bookings": "portal/_my_bookings.html",
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("team")
        .prefetch_related(
            Prefetch("team__memberships", queryset=Membership.objects.select_related("user"))
        )
    )
    now = timezone.now()
    my_jobs = list(
        Job.objects.filter(owner=request.user)
        .exclude(status__in=states.TERMINAL, finished_at__lt=now - timedelta(days=1))
        .select_related("node")
        .order_by("-submitted_at")[:10]
    )
    attach_queue_places(my_jobs)
    my_bookings = (
        Reservation.objects.filter(holder=request.user, status__in=LIVE_STATUSES, end__gt=now)
        .select_related("node")
        .prefetch_related("slots__gpu")
        .order_by("start")[:10]
    )
    return render_live(
        request,
        "portal/home.html",
        {
            "memberships": memberships,
            "board": gpu_board(now=now),
            "my_jobs": my_jobs,
            "my_bookings": my_bookings,
        },
        HOME_REGIONS,
    )
