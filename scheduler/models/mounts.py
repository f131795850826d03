"""Admin-defined named volumes jobs may mount (a shared dataset PVC, a scratch NFS share), and
named Secrets jobs may read as environment variables (by reference: the value never passes
through Karimasu)."""

from __future__ import annotations

from django.db import models

from portal.accounts.models import Team


class NamedMount(models.Model):
    name = models.SlugField(
        max_length=63, unique=True, help_text="What users write in a job's `mounts`."
    )
    claim = models.CharField(
        max_length=253, help_text="PersistentVolumeClaim in the jobs namespace."
    )
    path = models.CharField(max_length=500, help_text="Where it appears in the container.")
    read_only = models.BooleanField(
        default=True,
        help_text="Mounted read-only unless a job asks for write access and `allow_write` is set.",
    )
    allow_write = models.BooleanField(default=False)
    description = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} -> {self.claim}:{self.path}"


class NamedSecret(models.Model):
    """A Kubernetes Secret in the jobs namespace that the listed teams' jobs may read, by
    reference (``secretKeyRef``): the value stays in Kubernetes, and teammates who can see a
    job see only the reference. A Secret not listed here cannot be named by a job."""

    name = models.SlugField(
        max_length=63, unique=True, help_text="What users write in a job's `secrets`."
    )
    secret = models.CharField(max_length=253, help_text="Secret in the jobs namespace.")
    keys = models.JSONField(
        default=list, blank=True, help_text="Keys jobs may read (empty: any key)."
    )
    teams = models.ManyToManyField(Team, blank=True, related_name="named_secrets")
    description = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} -> {self.secret}"
