"""Interactive sessions: a workspace (JupyterLab, a VS Code server, a terminal) run as the
pod of a `Job` on a booking's GPUs and reached through the portal at ``/s/<id>/``.

The session's state is its job's (`Job.status`, moved only by `transition_job`); a session
adds what the job does not know: the workspace image it runs, the booking it lives in, the
end-of-booking warnings already sent and why it stopped.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from scheduler.models.jobs import Job
from scheduler.models.reservations import Reservation


class WorkspaceImage(models.Model):
    """An image admins allow sessions to run, with how to start it."""

    class Kind(models.TextChoices):
        JUPYTER = "jupyter", "JupyterLab"  # a name: the same in every language
        VSCODE = "vscode", _("VS Code server")
        TERMINAL = "terminal", _("Terminal")

    name = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=100, blank=True)
    image = models.CharField(max_length=500)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.JUPYTER)
    port = models.PositiveIntegerField(default=8888, help_text="The port the workspace serves on.")
    command = models.JSONField(default=list, blank=True)
    args = models.JSONField(default=list, blank=True)
    env = models.JSONField(
        default=dict,
        blank=True,
        help_text="Default environment; KARIMASU_BASE_URL (the session's path) is added.",
    )
    cpu_millis = models.PositiveIntegerField(default=2000)
    memory_mb = models.PositiveIntegerField(default=8192)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(port__gte=1, port__lte=65535), name="workspace_port_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.name


class Session(models.Model):
    job = models.OneToOneField(Job, on_delete=models.PROTECT, related_name="session")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="workspace_sessions"
    )
    workspace = models.ForeignKey(WorkspaceImage, on_delete=models.PROTECT, related_name="sessions")
    reservation = models.ForeignKey(
        Reservation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="workspace_sessions",
    )
    port = models.PositiveIntegerField()
    created_at = models.DateTimeField()
    # The end of the booking each warning was sent for (an extension sends them again).
    warned_15_for = models.DateTimeField(null=True, blank=True)
    warned_5_for = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    # The workspace's own last activity (its /api/status), as last read by the culler.
    last_activity_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"session {self.pk} {self.workspace_id} of {self.owner_id}"

    @property
    def path(self) -> str:
        """The session's stable URL path on the portal."""
        return f"/s/{self.pk}/"
