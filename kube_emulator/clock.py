"""Clocks that drive the simulated cluster.

The controller never calls ``time.time()`` itself: it asks a :class:`Clock`. Tests pass a
:class:`FakeClock` and move it with :meth:`FakeClock.advance`, so a 30-second training job
"runs" in microseconds; the demo passes a :class:`RealClock`.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol

#: 2026-01-01T00:00:00Z, a whole second, so RFC 3339 timestamps round-trip exactly.
DEFAULT_FAKE_START = 1_767_225_600.0


class Clock(Protocol):
    """A source of wall-clock time in seconds since the Unix epoch."""

    def now(self) -> float:
        """Current time, seconds since the epoch (UTC)."""
        ...


class RealClock:
    """The machine's wall clock."""

    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to; thread-safe.

    >>> clock = FakeClock(start=100.0)
    >>> clock.advance(2.5)
    102.5
    """

    def __init__(self, start: float = DEFAULT_FAKE_START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (must be >= 0) and return the new time."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += seconds
            return self._now


def rfc3339(epoch_seconds: float) -> str:
    """Format a timestamp the way the API server does (second precision, ``Z`` suffix).

    >>> rfc3339(DEFAULT_FAKE_START)
    '2026-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(int(epoch_seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Inverse of :func:`rfc3339` (also accepts fractional seconds and offsets)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
