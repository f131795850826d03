"""Pipeline run and step states. Pure; no Django.

run:  queued -> running -> succeeded | failed | cancelled
step: pending -> running -> succeeded | failed | cancelled
      pending -> cached (an identical earlier output is reused) | skipped (upstream failed)
      running -> retrying -> running (a new attempt after the step's retry delay)
resume: a failed or cancelled run -> running; its failed, skipped and cancelled steps ->
        pending (what succeeded is kept, never run again)
"""

from __future__ import annotations

QUEUED = "queued"
PENDING = "pending"
RUNNING = "running"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
CACHED = "cached"
FAILED = "failed"
SKIPPED = "skipped"
CANCELLED = "cancelled"

RUN_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
STEP_STATES = (PENDING, RUNNING, RETRYING, SUCCEEDED, CACHED, FAILED, SKIPPED, CANCELLED)
RUN_FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STEP_FINAL = frozenset({SUCCEEDED, CACHED, FAILED, SKIPPED, CANCELLED})
STEP_DONE = frozenset({SUCCEEDED, CACHED})  # its output is there for downstream steps

STEP_ALLOWED: dict[str, frozenset[str]] = {
    PENDING: frozenset({RUNNING, CACHED, SKIPPED, CANCELLED, FAILED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, RETRYING, CANCELLED}),
    RETRYING: frozenset({RUNNING, CANCELLED}),
    SUCCEEDED: frozenset(),
    CACHED: frozenset(),
    FAILED: frozenset({PENDING}),  # resumed
    SKIPPED: frozenset({PENDING}),
    CANCELLED: frozenset({PENDING}),
}
RUN_ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset({RUNNING}),  # resumed
    CANCELLED: frozenset({RUNNING}),
}


def step_can(current: str, target: str) -> bool:
    """>>> step_can("pending", "cached"), step_can("succeeded", "running")
    (True, False)
    """
    return target in STEP_ALLOWED.get(current, frozenset())


def run_can(current: str, target: str) -> bool:
    """>>> run_can("running", "failed"), run_can("succeeded", "running")
    (True, False)
    """
    return target in RUN_ALLOWED.get(current, frozenset())
