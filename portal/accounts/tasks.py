from celery import shared_task
from django.utils import timezone

from portal.accounts import services


@shared_task(name="accounts.purge_dead_tokens")
def purge_dead_tokens() -> int:
    """Periodic (beat): drop tokens dead for longer than the retention. Safe to run twice."""
    return services.purge_dead_tokens(now=timezone.now())
