"""The job state machine: which status may follow which. Pure; no Django.

`services.transition_job` is the only writer of `Job.status` and consults this table.

    queued -> admitted -> starting -> running -> succeeded | failed | timed_out
                 \\            \\          \\-> cancelled | preempted | lost
    preempted -> queued (requeued, attempt + 1)     lost -> queued | failed
"""

from __future__ import annotations

QUEUED = "queued"
ADMITTED = "admitted"
STARTING = "starting"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
PREEMPTED = "preempted"
LOST = "lost"

ALL = (
    QUEUED,
    ADMITTED,
    STARTING,
    RUNNING,
    SUCCEEDED,
    FAILED,
    CANCELLED,
    TIMED_OUT,
    PREEMPTED,
    LOST,
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, TIMED_OUT})
# Statuses in which the job holds (or is about to hold) GPUs on a node.
ON_CLUSTER = frozenset({ADMITTED, STARTING, RUNNING})

ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({ADMITTED, CANCELLED}),
    ADMITTED: frozenset({STARTING, RUNNING, QUEUED, CANCELLED, LOST, FAILED}),
    STARTING: frozenset({RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, PREEMPTED, LOST}),
    RUNNING: frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, PREEMPTED, LOST}),
    PREEMPTED: frozenset({QUEUED, CANCELLED}),
    LOST: frozenset({QUEUED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
    TIMED_OUT: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    """True when `target` may follow `current`.

    >>> can_transition("queued", "admitted"), can_transition("succeeded", "running")
    (True, False)
    """
    return target in ALLOWED.get(current, frozenset())
