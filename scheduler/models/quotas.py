"""What the scheduler weighs besides the jobs: priority classes and team quotas."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.db import models, transaction

from portal.accounts.models import Team


class PriorityClass(models.Model):
    """A named priority (Kubernetes' PriorityClass in spirit). Higher `value` runs first and
    may preempt lower, preemptible work.

    At most one is the default (what a job without a class gets): saving one as the default
    takes it from the others, whoever saves (the API, the admin, a script), and the
    database refuses a second default written any other way."""

    name = models.SlugField(max_length=32, unique=True)
    value = models.IntegerField()
    description = models.CharField(max_length=300, blank=True)
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["-value"]
        verbose_name_plural = "priority classes"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_priority_class",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.value})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        with transaction.atomic():
            if self.is_default:  # one default at a time: this one takes it
                others = PriorityClass.objects.filter(is_default=True)
                if self.pk is not None:
                    others = others.exclude(pk=self.pk)
                others.update(is_default=False)
            super().save(*args, **kwargs)

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # A form (the admin's) saving a new default is not refused: save() hands it over.
        super().validate_constraints(exclude={*(exclude or ()), "is_default"})


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
