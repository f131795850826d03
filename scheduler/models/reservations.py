"""GPU bookings ("reservations"), the policies that bound them, and maintenance windows.

One `Reservation` holds specific GPUs on one node for [start, end). Each GPU it holds is a
`ReservationSlot` row; on PostgreSQL an exclusion constraint (btree_gist: same GPU, and
overlapping time ranges, among active slots) makes a double booking impossible even under
races (migration 0004); on SQLite every write transaction is IMMEDIATE, so the check and the
insert in `reserve_gpus` are serialized.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.accounts.models import Team, User
from scheduler.models.inventory import Gpu, Node


class ReservationStatus(models.TextChoices):
    BOOKED = "booked"  # in the future
    ACTIVE = "active"  # now within [start, end)
    RELEASED = "released"  # given back early by a person
    EXPIRED = "expired"  # ran to its end
    CANCELLED = "cancelled"  # withdrawn before it started
    RECLAIMED = "reclaimed"  # taken back because its GPUs sat idle


LIVE_STATUSES = (ReservationStatus.BOOKED, ReservationStatus.ACTIVE)


class Reservation(models.Model):
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reservations"
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="reservations")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="reservations")
    start = models.DateTimeField()
    end = models.DateTimeField()
    purpose = models.CharField(max_length=500, blank=True)
    #: Exclusive by default: the GPUs serve only the holder's jobs. Shared, they also serve
    #: the jobs of the team the booking is charged to.
    shared_with_team = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16,
        choices=ReservationStatus.choices,
        default=ReservationStatus.BOOKED,
        db_index=True,
    )
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)  # released / reclaimed / cancelled
    # Idle auto-release (telemetry): exempted by an admin, warned, wasted GPU-hours.
    idle_exempt = models.BooleanField(default=False)
    idle_notice_at = models.DateTimeField(null=True, blank=True)
    waste_gpu_hours = models.FloatField(default=0.0)

    class Meta:
        ordering = ["start", "pk"]
        indexes = [models.Index(fields=["node", "start", "end"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="reservation_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"reservation {self.pk} {self.node} {self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M}"

    @property
    def gpu_count(self) -> int:
        return len(self.slots.all())

    def gpu_hours(self) -> float:
        return self.gpu_count * (self.end - self.start).total_seconds() / 3600


class ReservationSlot(models.Model):
    """One GPU of one reservation. `active` is False once the reservation no longer holds
    it (cancelled, released, reclaimed: `end` is then the moment it was given back)."""

    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="slots")
    gpu = models.ForeignKey(Gpu, on_delete=models.PROTECT, related_name="slots")
    start = models.DateTimeField()
    end = models.DateTimeField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["gpu__index"]
        indexes = [models.Index(fields=["gpu", "start", "end"])]

    def __str__(self) -> str:
        return f"gpu {self.gpu_id} {self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M}"


class TeamPolicy(models.Model):
    """Booking limits of one team, set by its leads and admins. Null means no limit."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="policy")
    max_booking_hours = models.PositiveIntegerField(null=True, blank=True, default=72)
    max_days_ahead = models.PositiveIntegerField(null=True, blank=True, default=14)
    max_gpus_per_user = models.PositiveIntegerField(null=True, blank=True, default=4)
    weekly_gpu_hours = models.FloatField(
        null=True, blank=True, help_text="Shared by bookings and jobs."
    )
    slack_webhook_url = models.URLField(blank=True)
    webhook_language = models.CharField(
        max_length=8, default=User.Language.ENGLISH, choices=User.Language.choices
    )
    notify_email = models.BooleanField(default=True)
    calendar_secret = models.CharField(max_length=64, blank=True, db_index=True)
    # The IANA zone the team's weeks (its weekly GPU-hours) are counted in; empty: the site's.
    time_zone = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"policy of {self.team}"


class MaintenanceWindow(models.Model):
    """No booking may overlap one. `node` empty: every node."""

    node = models.ForeignKey(
        Node, on_delete=models.CASCADE, null=True, blank=True, related_name="maintenance_windows"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="maintenance_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"maintenance {self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M} {self.reason}"
