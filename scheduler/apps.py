from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "GPU scheduler"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from portal.accounts.models import Membership
        from scheduler.services.calendar import rotate_after_leaving

        # However a member leaves (the API, the admin, their account deleted), the team's
        # calendar URL they knew stops working.
        post_delete.connect(rotate_after_leaving, sender=Membership, dispatch_uid="calendar-rotate")
