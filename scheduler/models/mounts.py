"""Admin-defined named volumes jobs may mount (a shared dataset PVC, a scratch NFS share)."""

from __future__ import annotations

from django.db import models


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
