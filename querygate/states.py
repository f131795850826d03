"""The query state machine: which status may follow which. Pure; no Django.

`querygate.services.lifecycle.move` is the only writer of `Query.status` after the audit
row is created, and consults this table (as `scheduler.states` does for jobs).

    (created) rejected | needs_ack | queued
    queued  -> running | succeeded (served from the result cache) | cancelled | killed | lost
    running -> succeeded | failed | cancelled | killed | lost
    running -> queued   (an inline run out of its inline budget, handed to a worker)

A refused request (``rejected``, ``needs_ack``) is final: a resend is a new audit row.
"""

from __future__ import annotations

REJECTED = "rejected"
NEEDS_ACK = "needs_ack"
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
KILLED = "killed"
LOST = "lost"

ALL = (REJECTED, NEEDS_ACK, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, KILLED, LOST)
# The statuses an audit row may be created in.
INITIAL = frozenset({REJECTED, NEEDS_ACK, QUEUED})
ACTIVE = frozenset({QUEUED, RUNNING})
FINAL = frozenset(ALL) - ACTIVE

ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, SUCCEEDED, CANCELLED, KILLED, LOST}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED, KILLED, LOST, QUEUED}),
    **{status: frozenset() for status in FINAL},
}


def can_transition(current: str, target: str) -> bool:
    """True when `target` may follow `current`.

    >>> can_transition("queued", "running"), can_transition("succeeded", "running")
    (True, False)
    >>> can_transition("running", "queued"), can_transition("rejected", "queued")
    (True, False)
    """
    return target in ALLOWED.get(current, frozenset())
