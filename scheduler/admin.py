"""Admin screens: inventory (read-only), jobs and bookings (read-only, with kill and give-back
actions that go through the services), and the settings admins own: priority classes, team
quotas, team booking policies, maintenance windows and named mounts. Saving a setting that
changes what may run asks for a scheduling cycle, as the API does."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.admin_tools import NoDeleteAdmin, ReadOnlyAdmin, confirm_with_reason
from portal.errors import KarimasuError
from scheduler import states
from scheduler.models import (
    LIVE_STATUSES,
    Gpu,
    Job,
    JobEvent,
    MaintenanceWindow,
    NamedMount,
    NamedSecret,
    Node,
    NodeEvent,
    PriorityClass,
    Reservation,
    Session,
    Sweep,
    TeamPolicy,
    TeamQuota,
    WorkspaceImage,
)
from scheduler.services import reservations, sessions, submission
from scheduler.services.jobs import request_cycle


class GpuInline(admin.TabularInline):
    model = Gpu
    extra = 0
    readonly_fields = ("index", "uuid", "model", "memory_mb", "present")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    """Read-only: the inventory follows the cluster (``cluster sync`` and the watcher)."""

    list_display = (
        "name",
        "gpu_model",
        "gpu_capacity",
        "ready",
        "cordoned",
        "last_seen_at",
        "gone_at",
    )
    list_filter = ("ready", "cordoned", "gpu_model")
    readonly_fields = [f.name for f in Node._meta.fields]
    inlines = [GpuInline]


@admin.register(NodeEvent)
class NodeEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "node", "kind", "detail")
    list_filter = ("kind",)


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    readonly_fields = ("at", "from_status", "to_status", "reason", "message", "attempt")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(NoDeleteAdmin):
    """Read-only: status changes go through the services (the kill action here, cancel on
    the job's page and in the API). Never deleted here: history."""

    list_display = (
        "pk",
        "name",
        "owner",
        "team",
        "status",
        "reason",
        "gpus",
        "node",
        "submitted_at",
    )
    list_filter = ("status", "team")
    search_fields = ("name", "owner__username")
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [JobEventInline]
    actions = ["kill"]

    @admin.action(
        description=gettext_lazy("Kill the selected jobs (cancel them, on the cluster too)")
    )
    def kill(self, request: Any, queryset: Any) -> HttpResponse | None:
        live = queryset.exclude(status__in=states.TERMINAL)

        def act(reason: str) -> None:
            now, killed = timezone.now(), 0
            for job in live:
                submission.cancel_job(request.user, job, now=now, reason=reason)
                killed += 1
            self.message_user(
                request, _("Killed %(count)s job(s).") % {"count": killed}, messages.SUCCESS
            )

        return confirm_with_reason(
            self,
            request,
            live,
            title=_("Kill jobs"),
            question=_(
                "Kill these jobs? They stop at once on the cluster. The reason is recorded "
                "with each job and shown to its owner."
            ),
            act=act,
        )

    def has_add_permission(self, request: Any) -> bool:
        return False  # jobs are submitted through the API or the jobs page


@admin.register(NamedMount)
class NamedMountAdmin(admin.ModelAdmin):
    list_display = ("name", "claim", "path", "read_only", "allow_write")


@admin.register(NamedSecret)
class NamedSecretAdmin(admin.ModelAdmin):
    list_display = ("name", "secret", "description")
    filter_horizontal = ("teams",)


class _RequestsCycle(admin.ModelAdmin):
    """A change here can let queued work run (or stop it from running): ask for a cycle."""

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        request_cycle()

    def delete_model(self, request: Any, obj: Any) -> None:
        super().delete_model(request, obj)
        request_cycle()


@admin.register(PriorityClass)
class PriorityClassAdmin(_RequestsCycle):
    list_display = ("name", "value", "is_default", "description")


@admin.register(TeamQuota)
class TeamQuotaAdmin(_RequestsCycle):
    list_display = (
        "team",
        "guaranteed_gpus",
        "borrowing_allowed",
        "borrowing_limit",
        "share_weight",
        "user_gpu_cap",
    )
    search_fields = ("team__slug", "team__name")


@admin.register(TeamPolicy)
class TeamPolicyAdmin(_RequestsCycle):
    list_display = (
        "team",
        "max_booking_hours",
        "max_days_ahead",
        "max_gpus_per_user",
        "weekly_gpu_hours",
    )
    search_fields = ("team__slug", "team__name")


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(_RequestsCycle):
    """Saving a window that overlaps live bookings warns with the list of them and tells
    their holders (``reservations.warn_of_maintenance``)."""

    list_display = ("start", "end", "node", "reason")
    list_filter = ("node",)

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        affected = reservations.warn_of_maintenance(obj)
        if affected:
            listed = "; ".join(
                f"#{r.pk} {r.holder.get_username()} ({r.team.slug}) {r.node.name} "
                f"{timezone.localtime(r.start):%Y-%m-%d %H:%M} – "
                f"{timezone.localtime(r.end):%Y-%m-%d %H:%M}"
                for r in affected[:20]
            )
            self.message_user(
                request,
                _(
                    "This maintenance window overlaps %(count)s live booking(s); their "
                    "holders have been notified: %(bookings)s"
                )
                % {"count": len(affected), "bookings": listed},
                messages.WARNING,
            )


@admin.register(Reservation)
class ReservationAdmin(NoDeleteAdmin):
    """Read-only: bookings change through the services (the give-back action here)."""

    list_display = ("pk", "holder", "team", "node", "start", "end", "status", "purpose")
    list_filter = ("status", "team", "node")
    search_fields = ("holder__username", "purpose")
    readonly_fields = [f.name for f in Reservation._meta.fields]
    actions = ["give_back"]

    @admin.action(description="Give back the selected bookings now (cancel future ones)")
    def give_back(self, request: Any, queryset: Any) -> None:
        now, ended = timezone.now(), 0
        for reservation in queryset.filter(status__in=LIVE_STATUSES):
            try:
                reservations.end_reservation(request.user, reservation, now=now)
            except KarimasuError as error:
                self.message_user(request, f"{reservation.pk}: {error.message}", messages.ERROR)
            else:
                ended += 1
        self.message_user(request, f"Gave back {ended} booking(s).", messages.SUCCESS)

    def has_add_permission(self, request: Any) -> bool:
        return False  # booked through the bookings page or the API (policies, no overlap)


@admin.register(Sweep)
class SweepAdmin(NoDeleteAdmin):
    list_display = ("pk", "name", "owner", "team", "parallelism", "created_at")
    search_fields = ("name", "owner__username")
    readonly_fields = [f.name for f in Sweep._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(WorkspaceImage)
class WorkspaceImageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The images sessions may run (docs/sessions.md): disable one rather than delete it
    (sessions keep a reference)."""

    list_display = ("name", "title", "kind", "image", "port", "enabled")
    list_filter = ("kind", "enabled")


@admin.register(Session)
class SessionAdmin(NoDeleteAdmin):
    """Read-only; admins stop sessions here (the job is cancelled, the pod deleted)."""

    list_display = ("pk", "owner", "workspace", "reservation", "job", "stop_reason", "created_at")
    readonly_fields = [f.name for f in Session._meta.fields]
    actions = ["stop"]

    @admin.action(description=gettext_lazy("Stop the selected sessions"))
    def stop(self, request: Any, queryset: Any) -> None:
        now, stopped = timezone.now(), 0
        for session in queryset.select_related("job"):
            sessions.stop_session(request.user, session, now=now, reason="stopped_by_admin")
            stopped += 1
        self.message_user(
            request, _("Stopped %(count)s session(s).") % {"count": stopped}, messages.SUCCESS
        )

    def has_add_permission(self, request: Any) -> bool:
        return False  # sessions start from a booking (the bookings page or the API)
