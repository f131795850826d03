"""The agent's bounded backlog of readings while the portal is unreachable.

Oldest first out when full; every reading pushed out is counted, and the count is reported
in the next batch that reaches the portal (then reset by `acknowledge`).
"""

from __future__ import annotations

from collections import deque
from typing import Any


class ReadingBuffer:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("buffer capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[dict[str, Any]] = deque()
        self.dropped = 0  # dropped since the last acknowledged batch
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, reading: dict[str, Any]) -> None:
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped += 1
            self.dropped_total += 1
        self._items.append(reading)

    def peek(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` oldest readings, left in place until acknowledged."""
        return [self._items[i] for i in range(min(limit, len(self._items)))]

    def acknowledge(self, count: int, dropped_reported: int) -> None:
        """The portal took the `count` oldest readings and heard of `dropped_reported` drops."""
        for _ in range(min(count, len(self._items))):
            self._items.popleft()
        self.dropped = max(0, self.dropped - dropped_reported)
