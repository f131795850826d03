"""Request throttles: atomic, O(1) per request, per token and per client address.

DRF's throttles keep a list of timestamps per client in the cache and write it back after
reading it: concurrent requests overwrite each other's entries (650 requests in 6 s went
through a 600/min limit), and each request costs O(rate). These count in a sliding window
made of two fixed windows (Cloudflare's approximation): the current window's counter is
incremented atomically and the previous one's is read, so a request costs two cache
operations whatever the rate:

    used = previous * (1 - elapsed / period) + current

Counting is atomic on every cache backend Karimasu configures: Redis (`INCR` and `EXPIRE`
in one pipeline), the in-memory cache (its `incr` holds a lock), and the demo's file cache
(its read-modify-write is wrapped in an exclusive `flock`).

Who is counted:
- an authenticated request by its API token (by its user for a browser session), at
  `API_THROTTLE_USER`;
- an anonymous request, and any request whose credentials are missing or wrong (even on
  endpoints that require them: the exception handler counts those), by client address at
  `API_THROTTLE_ANON`. IPv6 clients are counted per /64.

The client address is `REMOTE_ADDR` unless `KARIMASU_TRUSTED_PROXIES` is N > 0: then it is
the N-th address from the right of `X-Forwarded-For` (the one the outermost trusted proxy
saw); whatever a client put further left is never believed.
"""

from __future__ import annotations

import fcntl
import ipaddress
import math
import os
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from portal.accounts.models import ApiToken

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/min' -> (600, 60)."""
    count, period = rate.split("/")
    return int(count), PERIODS[period.strip()[0].lower()]


def client_ip(request: Any) -> str:
    """The client's address, believing only `KARIMASU_TRUSTED_PROXIES` proxies."""
    meta = getattr(request, "META", {})
    remote = str(meta.get("REMOTE_ADDR") or "")
    proxies = int(getattr(settings, "KARIMASU_TRUSTED_PROXIES", 0))
    if proxies > 0:
        chain = [a.strip() for a in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
        chain = [a for a in chain if a]
        if chain:
            candidate = chain[-min(proxies, len(chain))]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass  # a proxy we trust would not write garbage: fall back to the peer
    return remote


def address_key(address: str) -> str:
    """IPv4 as is; IPv6 by its /64 (one host usually owns a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _incr(key: str, ttl: int, previous: str | None = None) -> tuple[int, int]:
    """Add one to the counter `key` (created with `ttl` seconds to live); returns its new
    value and the value of the counter `previous` (0 if none), in one round trip on Redis."""
    store = _backend()
    if isinstance(store, RedisCache):
        full = store.make_and_validate_key(key)
        client = store._cache.get_client(full, write=True)
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(full)
            pipe.expire(full, ttl, nx=True)
            if previous is not None:
                pipe.get(store.make_and_validate_key(previous))
            values = pipe.execute()
        before = values[2] if previous is not None and values[2] is not None else 0
        return int(values[0]), int(before)
    if previous is None:
        return _locked_incr(store, key, ttl), 0
    return _locked_incr(store, key, ttl), int(store.get(previous) or 0)


def _locked_incr(store: Any, key: str, ttl: int) -> int:
    if isinstance(store, FileBasedCache):
        os.makedirs(store._dir, exist_ok=True)
        with open(os.path.join(store._dir, ".throttle.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return _add_or_incr(store, key, ttl)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return _add_or_incr(store, key, ttl)


def _add_or_incr(store: Any, key: str, ttl: int) -> int:
    if store.add(key, 1, ttl):
        return 1
    try:
        return int(store.incr(key))
    except ValueError:  # expired between add and incr
        store.add(key, 1, ttl)
        return 1


def _backend() -> Any:
    return caches["default"]


class CounterThrottle(BaseThrottle):
    scope = ""

    def __init__(self) -> None:
        self.wait_s: float | None = None

    def ident(self, request: Any) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Any, view: Any) -> bool:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        ident = self.ident(request)
        if not rate or ident is None:
            return True
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        elapsed = now - window * period
        prefix = f"throttle:{self.scope}:{ident}:"
        current, previous = _incr(f"{prefix}{window}", 2 * period, f"{prefix}{window - 1}")
        used = previous * (1 - elapsed / period) + current
        if used <= limit:
            return True
        # When the weighted count falls back under the limit, assuming no more requests.
        if current > limit:
            self.wait_s = period - elapsed
        else:
            self.wait_s = max(0.0, (1 - (limit - current) / previous) * period - elapsed)
        self.wait_s = max(1.0, math.ceil(self.wait_s))
        return False

    def wait(self) -> float | None:
        return self.wait_s


class UserThrottle(CounterThrottle):
    """Authenticated requests, per API token (per user for a browser session)."""

    scope = "user"

    def ident(self, request: Any) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        auth = getattr(request, "auth", None)
        if isinstance(auth, ApiToken):
            return f"token:{auth.pk}"
        return f"user:{user.pk}"


class AnonThrottle(CounterThrottle):
    """Requests without (valid) credentials, per client address."""

    scope = "anon"

    def ident(self, request: Any) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return None
        return f"addr:{address_key(client_ip(request))}"


def throttle_failed_credentials(request: Any) -> float | None:
    """Count a request refused for missing or wrong credentials against its address.

    DRF checks permissions before throttles, so without this a 401 was never throttled
    (guessing tokens cost nothing). Returns the wait when over the limit, else None.
    """
    throttle = AnonThrottle()
    address = f"addr:{address_key(client_ip(request))}"
    throttle.ident = lambda _request: address  # type: ignore[method-assign]
    if throttle.allow_request(request, None):
        return None
    return throttle.wait()
