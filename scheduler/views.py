"""Server-rendered and file endpoints of the scheduler."""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from portal.accounts.access import visible_teams
from portal.accounts.models import Team, User
from portal.errors import KarimasuError, NotFoundError
from portal.live import live_regions, render_live, wants_live
from scheduler import states
from scheduler.cluster.backend import ClusterError
from scheduler.cluster.factory import cluster_backend
from scheduler.forms import BookForm, BorrowForm, JobForm
from scheduler.models import (
    LIVE_STATUSES,
    Job,
    Node,
    Reservation,
    WorkspaceImage,
    attach_queue_places,
)
from scheduler.services import (
    access,
    availability,
    calendar,
    calendar_view,
    job_logs,
    reservations,
    sessions,
    submission,
    usage,
)
from scheduler.services.access import (
    can_compare_teams,
    can_manage_job,
    can_view_team,
    visible_jobs,
)
from scheduler.services.calendar import feed_for_secret
from scheduler.telemetry.figures import utilization_figure


@never_cache
def calendar_feed(request: HttpRequest, secret: str) -> HttpResponse:
    """An iCalendar feed; the secret in the URL is the credential (calendar apps send no
    other). Unknown secrets are a plain 404."""
    body = feed_for_secret(secret, now=timezone.now())
    if body is None:
        raise Http404(_("No such calendar."))
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="karimasu.ics"'
    return response


@login_required
def bookings_page(request: HttpRequest) -> HttpResponse:
    """The bookings calendar: every GPU's bookings, jobs and maintenance over a rolling span
    (``?from=YYYY-MM-DD&days=N``; today and the six days after it by default), drawn by the
    page's timeline from ``/api/v1/calendar/`` and listed per day below it (the view on
    narrow screens and without script); booking and borrowing forms, and the user's live
    bookings to give back. Writes go through the same services as the API."""
    now = timezone.now()
    span = _span(request, now)
    book_form = BookForm(user=request.user, prefix="book")
    borrow_form = BorrowForm(user=request.user, prefix="borrow")
    if request.method == "POST":
        back = f"{request.path}?from={span.first:%Y-%m-%d}&days={span.days}"
        action = request.POST.get("action", "")
        if action == "book":
            book_form = BookForm(request.POST, user=request.user, prefix="book")
            if book_form.is_valid() and _book(request, book_form, now):
                return redirect(back)
        elif action == "borrow":
            borrow_form = BorrowForm(request.POST, user=request.user, prefix="borrow")
            if borrow_form.is_valid() and _borrow(request, borrow_form, now):
                return redirect(back)
        elif action in ("end", "extend"):
            _change(request, action, request.POST.get("reservation", ""), now)
            return redirect(back)
    mine = (
        Reservation.objects.filter(holder=request.user, status__in=LIVE_STATUSES, end__gt=now)
        .select_related("node", "team")
        .prefetch_related("slots__gpu")
        .order_by("start")
    )
    data = calendar_view.calendar_data(request.user, span, now=now)
    today = timezone.localtime(now).date()
    return render_live(
        request,
        "scheduler/bookings.html",
        {
            "span": span,
            "last_day": span.first + timedelta(days=span.days - 1),
            "nav": {
                "previous_week": span.first - timedelta(days=7),
                "previous_day": span.first - timedelta(days=1),
                "today": today,
                "next_day": span.first + timedelta(days=1),
                "next_week": span.first + timedelta(days=7),
            },
            "agenda": calendar_view.agenda(data),
            "gpu_count": len(data["groups"]),
            "feed_url": request.build_absolute_uri(
                f"/calendar/{calendar.feed_secret(cast(User, request.user))}.ics"
            ),
            "calendar_strings": _calendar_strings(),
            "utc_offset": _utc_offset(span.start),
            "mine": mine,
            "book_form": book_form,
            "borrow_form": borrow_form,
            "time_zones": _time_zones(),
            "site_time_zone": settings.TIME_ZONE,
            "current_time_zone": timezone.get_current_timezone_name(),
        },
        BOOKINGS_REGIONS,
    )


def _utc_offset(at: datetime) -> int:
    """Minutes east of UTC of the current time zone at ``at`` (the calendar's script shows
    times at this offset, as the forms read them)."""
    offset = timezone.localtime(at).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def _calendar_strings() -> dict[str, str]:
    """What the calendar's script writes, in the user's language (json_script, no inline
    script)."""
    return {
        "gpus": _("GPUs"),
        "job": _("job"),
        "maintenance": _("maintenance"),
        "status": _("Status"),
        "team": _("Team"),
        "purpose": _("Purpose"),
        "open_job": _("Open the job"),
        "close": _("Close"),
        "book_prompt": _("The booking form below is filled in: check it and press Book."),
        "loading_failed": _("The calendar could not be loaded; the list below still shows it."),
        "your_booking": _("your booking"),
    }


def _span(request: HttpRequest, now: datetime) -> calendar_view.Span:
    """The span asked for (``?from=&days=``; the old ``?week=`` is read as ``from``); a bad
    value falls back to the default (a page, unlike the API, shows something)."""
    first = request.GET.get("from") or request.GET.get("week") or None
    try:
        return calendar_view.span_from(first, request.GET.get("days"), now=now)
    except ValueError:
        return calendar_view.span_from(None, None, now=now)


# What the bookings page refreshes without a reload (portal/live.py).
BOOKINGS_REGIONS = {
    "agenda": "scheduler/_bookings_agenda.html",
    "mine": "scheduler/_bookings_mine.html",
}


@cache
def _time_zones() -> list[str]:
    """Every IANA time zone this machine knows, sorted (read once)."""
    return sorted(zoneinfo.available_timezones())


def _refused(request: HttpRequest, error: KarimasuError) -> None:
    """The service's refusal as a message, with the conflicting bookings when it names them."""
    text = error.message
    conflicts = error.details.get("conflicts") if isinstance(error.details, dict) else None
    if conflicts:
        text += " " + "; ".join(_conflict_text(c) for c in conflicts[:5])
    messages.error(request, text)


def _conflict_text(conflict: dict[str, Any]) -> str:
    """``GPU 0, 1: alice (vision) 2026-11-24 10:00 – 2026-11-24 12:00`` from a conflict."""
    gpus = ", ".join(str(index) for index in conflict.get("gpus", []))
    who = conflict.get("holder") or conflict.get("kind") or ""
    if conflict.get("team"):
        who += f" ({conflict['team']})"
    span = calendar_view.local_span(
        datetime.fromisoformat(conflict["start"]), datetime.fromisoformat(conflict["end"])
    )
    return f"GPU {gpus}: {who} {span}"


def _book(request: HttpRequest, form: BookForm, now: datetime) -> bool:
    data = form.cleaned_data
    return _try_booking(
        request,
        lambda: reservations.reserve_gpus(
            request.user,
            team=data["team"],
            node=data["node"],
            gpu_indices=data["gpus"],
            start=data["start"],
            end=data["end"],
            purpose=data["purpose"],
            shared_with_team=data["shared_with_team"],
            now=now,
        ),
        _("Booked: %(what)s."),
    )


def _borrow(request: HttpRequest, form: BorrowForm, now: datetime) -> bool:
    data = form.cleaned_data
    return _try_booking(
        request,
        lambda: availability.borrow_now(
            request.user,
            team=data["team"],
            gpus=data["gpus"],
            model=None,
            hours=data["hours"],
            purpose=data["purpose"],
            shared_with_team=data["shared_with_team"],
            now=now,
        ),
        _("Borrowed: %(what)s."),
    )


def _try_booking(request: HttpRequest, make: Callable[[], Reservation], done: str) -> bool:
    """Call a booking service; say what it did (``done``) or why not. True on success."""
    try:
        reservation = make()
    except KarimasuError as error:
        _refused(request, error)
        return False
    messages.success(request, done % {"what": _describe(reservation)})
    return True


def _change(request: HttpRequest, action: str, pk: str, now: datetime) -> None:
    """``end`` (give back, or cancel before it begins) or ``extend`` (one more hour at the
    end, if the GPUs are free then and the policy allows) the booking ``pk``."""

    def change() -> Reservation:
        try:
            reservation = reservations.get_reservation(int(pk))
        except ValueError:
            raise NotFoundError(_("No such booking.")) from None
        if action == "extend":
            end = reservation.end + timedelta(hours=1)
            return reservations.change_reservation(request.user, reservation, end=end, now=now)
        return reservations.end_reservation(request.user, reservation, now=now)

    done = _("Extended: %(what)s.") if action == "extend" else _("Gave back: %(what)s.")
    _try_booking(request, change, done)


def _describe(reservation: Reservation) -> str:
    indices = ", ".join(str(s.gpu.index) for s in reservation.slots.select_related("gpu"))
    span = calendar_view.local_span(reservation.start, reservation.end)
    return f"{reservation.node.name} GPU {indices}, {span}"


@login_required
def my_team_page(request: HttpRequest) -> HttpResponse:
    """``/team/``: the first of the user's teams (by slug), or a note that they have none."""
    mine = Team.objects.filter(memberships__user=cast(User, request.user)).order_by("slug")
    first = mine.first() or visible_teams(request.user).order_by("slug").first()
    if first is None:
        return render(request, "scheduler/team.html", {"team": None})
    return redirect("team", slug=first.slug)


@login_required
def team_page(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's quota and budget against use, booked-vs-busy GPU-hours per week (a chart),
    members' running jobs and bookings, what waits and why, and its jobs' efficiency;
    leads and admins also see every team's waste per week. Members and admins
    (``access.can_view_team``); others get 404, as for a job they may not see."""
    team = Team.objects.filter(slug=slug).first()
    if team is None or not can_view_team(request.user, team):
        raise Http404(_("No such team."))
    now = timezone.now()
    overview = usage.team_overview(team, now=now, weeks=WEEKS_SHOWN)
    waste = None
    if can_compare_teams(request.user) and not wants_live(request):
        waste = usage.waste_by_team(
            Team.objects.all(), weeks=WEEKS_SHOWN, now=now, known={team.slug: overview["weeks"]}
        )
    chart = {
        "labels": [
            f"{timezone.localtime(datetime.fromisoformat(w['week_start'])):%m-%d}"
            for w in overview["weeks"]
        ],
        "series": [
            {
                "label": _("Booked GPU-hours"),
                "data": [w["booked_gpu_hours"] for w in overview["weeks"]],
            },
            {
                "label": _("Busy GPU-hours (booked)"),
                "data": [w["busy_gpu_hours"] for w in overview["weeks"]],
            },
            {"label": _("Job GPU-hours"), "data": [w["job_gpu_hours"] for w in overview["weeks"]]},
            {
                "label": _("Busy GPU-hours (jobs)"),
                "data": [w["job_busy_gpu_hours"] for w in overview["weeks"]],
            },
        ],
        "y_label": _("GPU-hours"),
    }
    budget = overview["budget"]
    return render_live(
        request,
        "scheduler/team.html",
        {
            "team": team,
            "teams": visible_teams(request.user).order_by("slug"),
            "o": overview,
            "chart": chart,
            "waste": waste,
            "budget_percent": (
                min(100, round(100 * budget["used_gpu_hours"] / budget["weekly_gpu_hours"]))
                if budget["weekly_gpu_hours"]
                else None
            ),
        },
        TEAM_REGIONS,
    )


WEEKS_SHOWN = 4
#: The team page's parts that refresh themselves (portal/live.py): quota and budget, and
#: what runs, waits and is booked now.
TEAM_REGIONS = {"quota": "scheduler/_team_quota.html", "now": "scheduler/_team_now.html"}


@login_required
def jobs_page(request: HttpRequest) -> HttpResponse:
    """The jobs the user may see (theirs and their teams'; ``?mine=1`` only theirs) with
    status, reason, queue position and ETA, and a form to submit one."""
    form = JobForm(user=request.user, prefix="job")
    if request.method == "POST":
        form = JobForm(request.POST, user=request.user, prefix="job")
        if form.is_valid():
            try:
                job = submission.submit_job(request.user, form.job_request(), now=timezone.now())
            except KarimasuError as error:
                _refused(request, error)
            else:
                messages.success(request, _("Submitted job %(id)s.") % {"id": job.pk})
                return redirect("job", job_id=job.pk)
    mine = request.GET.get("mine") == "1"
    jobs = visible_jobs(request.user).order_by("-submitted_at", "-pk")
    if mine:
        jobs = jobs.filter(owner=request.user)
    shown = list(jobs[:100])
    attach_queue_places(shown)
    return render_live(
        request,
        "scheduler/jobs.html",
        {"jobs": shown, "form": form, "mine": mine},
        {"rows": "scheduler/_jobs_rows.html"},
    )


JOB_REGIONS = {
    "state": "scheduler/_job_state.html",
    "utilization": "scheduler/_job_utilization.html",
    "events": "scheduler/_job_events.html",
    "efficiency": "scheduler/_job_efficiency.html",
}
LOG_LINES = 200  # the log opens at its last 200 lines; "earlier" doubles them
LOG_MAX_LINES = 20_000


@login_required
def job_page(request: HttpRequest, job_id: int) -> HttpResponse:
    """One job: what was asked, where it runs, its state by meaning, GPU utilization, its
    timeline and the tail of its log, cancel. ``?live=1`` answers the live regions
    (``portal.live``) that the page's script polls while the job is not final."""
    job = _visible_job(request, job_id)
    if request.method == "POST" and request.POST.get("action") == "cancel":
        try:
            submission.cancel_job(request.user, job, now=timezone.now())
        except KarimasuError as error:
            _refused(request, error)
        else:
            messages.success(request, _("Cancelled job %(id)s.") % {"id": job.pk})
        return redirect("job", job_id=job.pk)
    now = timezone.now()
    context: dict[str, Any] = {
        "job": job,
        "events": job.events.order_by("at", "pk"),
        "ran_for": _ran_for(job, now),
        "utilization": utilization_figure(job),
        "can_cancel": job.status not in states.TERMINAL and can_manage_job(request.user, job),
        "efficiency": usage.job_efficiency(job, now=now),
    }
    if wants_live(request):
        return live_regions(request, JOB_REGIONS, context, stop=job.status in states.TERMINAL)
    text, note, more = _log_tail(job, LOG_LINES)
    context.update(
        log_text=text,
        log_note=note,
        log_more=more,
        log_lines=LOG_LINES,
        log_follow=job.status not in states.TERMINAL,
    )
    return render_live(request, "scheduler/job.html", context, JOB_REGIONS)


@login_required
@never_cache
def job_log(request: HttpRequest, job_id: int) -> JsonResponse:
    """The last ``?lines=N`` lines of a job's log (200 by default), for the job page's
    script: it opens at the tail, loads earlier lines on demand and follows while the job
    is not final. ``more``: there may be earlier lines; ``done``: the log will not grow."""
    job = _visible_job(request, job_id)
    try:
        lines = min(max(int(request.GET.get("lines", LOG_LINES)), 1), LOG_MAX_LINES)
    except ValueError:
        lines = LOG_LINES
    text, note, more = _log_tail(job, lines)
    return JsonResponse(
        {
            "text": text,
            "note": note,
            "lines": lines,
            "more": more,
            "done": job.status in states.TERMINAL,
        }
    )


def _visible_job(request: HttpRequest, job_id: int) -> Job:
    job: Job | None = visible_jobs(request.user).filter(pk=job_id).first()
    if job is None:
        raise Http404(_("No such job."))
    return job


def _ran_for(job: Job, now: datetime) -> timedelta | None:
    if job.started_at is None:
        return None
    return (job.finished_at or now) - job.started_at


def _log_tail(job: Job, lines: int) -> tuple[str, str, bool]:
    """(text, note, more): the last ``lines`` lines, or a note saying why there are none."""
    if job.status == states.QUEUED:
        return "", _("The job has not started yet: no log."), False
    tail = job_logs.read_archive(job, job.attempt, lines)
    if tail is None:
        try:
            tail = list(cluster_backend().logs(job.pk, job.attempt, tail_lines=lines, follow=False))
        except ClusterError as error:
            return "", _("The log is not available: %(why)s") % {"why": error}, False
    return "\n".join(tail), "", len(tail) >= lines and lines < LOG_MAX_LINES


# --- interactive sessions (docs/sessions.md) -----------------------------------------------


@login_required
def sessions_page(request: HttpRequest) -> HttpResponse:
    """Your sessions, and starting one on a live booking you hold (``?reservation=N``
    preselects it, as the bookings page's "Start session" links do)."""
    now = timezone.now()
    if request.method == "POST":
        return _start_session(request, now)
    bookings = Reservation.objects.filter(
        holder_id=request.user.pk, status__in=LIVE_STATUSES, start__lte=now, end__gt=now
    ).select_related("node")
    context = {
        "sessions": [
            (s, sessions.state(s))
            for s in access.visible_sessions(request.user).filter(owner=request.user)[:50]
        ],
        "bookings": bookings,
        "images": WorkspaceImage.objects.filter(enabled=True),
        "selected": request.GET.get("reservation", ""),
        "teams": [m.team for m in request.user.memberships.select_related("team")],  # type: ignore[union-attr]
        "gpu_models": sorted(
            set(
                Node.objects.filter(gone_at__isnull=True)
                .exclude(gpu_model="")
                .values_list("gpu_model", flat=True)
            )
        ),
        "default_hours": f"{float(settings.KARIMASU_SESSION_DEFAULT_HOURS):g}",
        "max_hours": f"{float(settings.KARIMASU_SESSION_MAX_HOURS):g}",
    }
    return render(request, "scheduler/sessions.html", context)


def _start_session(request: HttpRequest, now: datetime) -> HttpResponse:
    post = request.POST
    try:
        workspace = WorkspaceImage.objects.filter(name=post.get("image", ""), enabled=True).first()
        if post.get("mode") == "on_demand":
            if workspace is None:
                raise NotFoundError(_("Choose a workspace image."))
            session = sessions.start_ondemand_session(
                request.user,  # type: ignore[arg-type]
                team=post.get("team", ""),
                workspace=workspace,
                gpus=_int(post.get("gpus"), 1),
                gpu_models=[post["gpu_model"]] if post.get("gpu_model") else [],
                hours=_float(post.get("hours")),
                now=now,
            )
            messages.success(request, _("Session %(id)s is queued for GPUs.") % {"id": session.pk})
            return redirect("session", session_id=session.pk)
        reservation = access.access_reservation(request.user, post.get("reservation"))
        if workspace is None:
            raise NotFoundError(_("Choose a workspace image."))
        session = sessions.start_session(
            request.user,  # type: ignore[arg-type]
            reservation=reservation,
            workspace=workspace,
            now=now,
        )
    except KarimasuError as error:
        _refused(request, error)
        return redirect("sessions")
    messages.success(request, _("Session %(id)s is starting.") % {"id": session.pk})
    return redirect("session", session_id=session.pk)


def _float(value: Any) -> float | None:
    """A number from a form, None when empty or not a number (the default applies)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@login_required
def session_page(request: HttpRequest, session_id: int) -> HttpResponse:
    """One session: state, GPUs, node, image, time left; Open (``/s/<id>/``), Stop,
    Extend. Refreshes itself while it is not stopped."""
    try:
        session = access.access_session(request.user, session_id)
    except NotFoundError as exc:
        raise Http404(str(exc)) from exc
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "stop":
                sessions.stop_session(request.user, session, now=timezone.now())  # type: ignore[arg-type]
                messages.success(request, _("Session %(id)s stopped.") % {"id": session.pk})
            elif action == "extend":
                sessions.extend_session(
                    request.user,  # type: ignore[arg-type]
                    session,
                    minutes=_int(request.POST.get("minutes"), 30),
                    now=timezone.now(),
                )
                messages.success(
                    request,
                    _("The booking now ends later.")
                    if session.reservation_id is not None
                    else _("The session now ends later."),
                )
        except KarimasuError as error:
            _refused(request, error)
        return redirect("session", session_id=session.pk)
    state = sessions.state(session)
    end = sessions.ends_at(session)
    left = max(timedelta(0), end - timezone.now()) if end and state != "stopped" else None
    context = {
        "session": session,
        "state": state,
        "ends_at": end,
        "minutes_left": int(left.total_seconds() // 60) if left is not None else None,
        "can_open": access.can_open_session(request.user, session) and state != "stopped",
        "can_manage": access.can_manage_session(request.user, session) and state != "stopped",
        "live": state != "stopped",
        "duration_hours": f"{session.job.max_runtime_s / 3600:.4g}",
    }
    return render(request, "scheduler/session.html", context)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
