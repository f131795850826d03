from typing import Any

from django.apps import AppConfig


def _forget_user_tokens(sender: Any, instance: Any, **kwargs: Any) -> None:
    from portal.accounts.services import forget_tokens

    forget_tokens(user_id=instance.pk)


def _forget_token(sender: Any, instance: Any, **kwargs: Any) -> None:
    from portal.accounts.services import forget_tokens

    forget_tokens(digests=[instance.digest])


class AccountsConfig(AppConfig):
    name = "portal.accounts"
    label = "accounts"
    verbose_name = "Accounts and teams"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from portal.accounts.models import ApiToken, User

        # Cached token lookups (services.authenticate_token) never outlive a change of the
        # token or of its user (deactivated, made staff, deleted).
        for signal in (post_save, post_delete):
            signal.connect(_forget_user_tokens, sender=User, dispatch_uid=f"tokens-user-{signal}")
            signal.connect(_forget_token, sender=ApiToken, dispatch_uid=f"tokens-token-{signal}")
