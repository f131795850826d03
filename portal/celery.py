"""The Celery app: configuration from Django settings (CELERY_*), tasks from each app."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("karimasu")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
@worker_process_init.connect
def _freeze_startup_objects(**_: object) -> None:
    """Move everything loaded at start (Django, models, the scheduler core) out of the
    garbage collector's view: otherwise a full collection over them lands in a scheduling
    cycle every few runs and costs it 60-100 ms (see benchmarks/RESULTS.md)."""
    gc.freeze()
