"""What the scheduler weighs besides the jobs: priority classes, team quotas, sweeps."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.accounts.models import Team


class PriorityClass(models.Model):
    """A named priority (Kubernetes' PriorityClass in spirit). Higher `value` runs first and
    may preempt lower, preemptible work."""

    name = models.SlugField(max_length=32, unique=True)
    value = models.IntegerField()
    description = models.CharField(max_length=300, blank=True)
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["-value"]
        verbose_name_plural = "priority classes"

    def __str__(self) -> str:
        return f"{self.name} ({self.value})"


class TeamQuota(models.Model):
    """A team's guaranteed GPUs, borrowing and fair-share weight. The weekly GPU-hour budget
    is `TeamPolicy.weekly_gpu_hours`, shared with bookings."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="quota")
    guaranteed_gpus = models.PositiveIntegerField(default=0)
    borrowing_allowed = models.BooleanField(default=True)
    borrowing_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: any idle GPU."
    )
    share_weight = models.FloatField(default=1.0)
    user_gpu_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most GPUs one member's jobs hold at once. Empty: no cap."
    )
    # Priority classes (names) the team's members may choose besides the default; leads and
    # admins may choose any.
    member_priority_classes = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"quota of {self.team}"


class Sweep(models.Model):
    """N jobs from one template and a parameter grid or list, run at most `parallelism`
    at a time."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sweeps"
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="sweeps")
    template = models.JSONField()
    parameters = models.JSONField(help_text="The grid or list the jobs were expanded from.")
    parallelism = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"sweep {self.pk} {self.name}"
