"""Per-user and per-address request throttles.

DRF's own classes copy the rate table once at import; these read it on every request, so
a changed setting (a test, a reloaded config) takes effect.
"""

from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class _LiveRates:
    scope: str

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserThrottle(_LiveRates, UserRateThrottle):
    """Authenticated requests, keyed by user id."""


class AnonThrottle(_LiveRates, AnonRateThrottle):
    """Anonymous requests, keyed by client address."""
