"""The booking (reservation) state machine: which status may follow which. Pure; no Django.

`scheduler.services.reservations` writes `Reservation.status` through one function,
`move_reservation`, which consults this table (as `transition_job` does `states.ALLOWED`).

    (created) booked | active
    booked -> active (its start came) | cancelled (withdrawn before it began)
              | expired (its whole time passed unseen)
    active -> released (given back by a person) | reclaimed (idle, or its GPUs were
              needed back) | expired (ran to its end)
"""

from __future__ import annotations

BOOKED = "booked"
ACTIVE = "active"
RELEASED = "released"
EXPIRED = "expired"
CANCELLED = "cancelled"
RECLAIMED = "reclaimed"

ALL = (BOOKED, ACTIVE, RELEASED, EXPIRED, CANCELLED, RECLAIMED)
INITIAL = frozenset({BOOKED, ACTIVE})
LIVE = frozenset({BOOKED, ACTIVE})

ALLOWED: dict[str, frozenset[str]] = {
    BOOKED: frozenset({ACTIVE, CANCELLED, EXPIRED}),
    ACTIVE: frozenset({RELEASED, RECLAIMED, EXPIRED}),
    RELEASED: frozenset(),
    EXPIRED: frozenset(),
    CANCELLED: frozenset(),
    RECLAIMED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    """True when `target` may follow `current`.

    >>> can_transition("booked", "active"), can_transition("expired", "active")
    (True, False)
    >>> can_transition("booked", "released")
    False
    """
    return target in ALLOWED.get(current, frozenset())
