"""How a job's state reads on the pages: a tone by meaning (a job that cannot start is a
warning, not the blue of a healthy start) and a human message for each reason code.

The reason codes come from the cluster mapping (``scheduler.cluster.mapping``: waiting
containers, failed pods), the reconcile (timeouts, requeues, refusals) and the core's
``Reason`` (why a queued job waits). The raw text the cluster gave stays in
``Job.message``; the pages show it behind a details toggle.
"""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from scheduler import messages, states

OK, INFO, WAIT, WARN, ERROR, MUTED = "ok", "info", "wait", "warn", "error", "muted"

#: Status -> its label on the pages (the model's choices carry no translations).
STATUS_TEXT: dict[str, Promise] = {
    states.QUEUED: _("Queued"),
    states.ADMITTED: _("Admitted"),
    states.STARTING: _("Starting"),
    states.RUNNING: _("Running"),
    states.SUCCEEDED: _("Succeeded"),
    states.FAILED: _("Failed"),
    states.CANCELLED: _("Cancelled"),
    states.TIMED_OUT: _("Timed out"),
    states.PREEMPTED: _("Preempted"),
    states.LOST: _("Lost"),
}

#: Reason code -> what it means for the job's owner.
REASON_TEXT: dict[str, Promise] = {
    # A container that waits (scheduler.cluster.mapping.WAITING_REASONS).
    "image_pull_failure": _(
        "The image cannot be pulled: check its name and tag and the registry's pull secret."
    ),
    "invalid_image": _("The image reference is not valid, or the image may not be pulled."),
    "container_config_error": _(
        "The container's configuration is incomplete (a missing secret or mount?)."
    ),
    "container_start_error": _(
        "The container could not be started (its command, or the node's GPU driver?)."
    ),
    "crash_loop": _(
        "The container keeps exiting and is restarted after a growing delay: see its log."
    ),
    "unschedulable": _("Kubernetes cannot place the pod on a node."),
    "retrying": _("The container stopped and Kubernetes is trying again."),
    "creating": _("The job is being created on the cluster."),
    "starting": _("The container is starting."),
    "submitted": _("Sent to the cluster; the container is starting."),
    "admitted": _("GPUs were assigned; the job is being sent to the cluster."),
    "session": _("The booking's GPUs were assigned to its session."),
    # Ends of a session (scheduler.services.sessions).
    "booking_ended": _("The session stopped because its booking ended."),
    "time_up": _("The session stopped because its time was up."),
    "idle": _("The session stopped because it sat idle."),
    # A multi-node job that lost one of its pods (scheduler.services.reconcile).
    "gang_broken": _("A pod of this multi-node job was lost, so the whole job was stopped."),
    "finishing": _("The container has finished; the result is being recorded."),
    # Ends of an attempt.
    "deadline_exceeded": _("The job ran past its longest runtime and was stopped."),
    "oom_killed": _("The job ran out of memory and was killed."),
    "error": _("The container exited with an error."),
    "evicted": _("Kubernetes evicted the pod from its node."),
    "node_lost": _("The node running the job stopped answering."),
    "start_timeout": _("The job did not start in time and was stopped."),
    "rejected_by_cluster": _("The cluster refused the job (see the details)."),
    "cancelled": _("The job was cancelled."),
    "preempted": _("Preempted: the job was stopped for other work and waits again."),
    "preempted_reclaim": _("Preempted: the team that lent the GPUs wanted them back."),
    "preempted_priority": _("Preempted: a job of a higher priority needed the GPUs."),
    # Why a queued job waits (scheduler.core.decisions.Reason).
    "quota": _("Waits: the team is at its GPU quota."),
    "budget": _("Waits: the team's weekly GPU-hours would be exceeded."),
    "no-model": _("Cannot run: no node has a GPU model the job accepts."),
    "too-big": _("Cannot run: no node could ever hold the job (GPUs, CPU or memory)."),
    "no-nodes": _("Waits for a node: the cluster has none that takes work yet."),
    "reserved": _("Waits: the free GPUs are booked by others."),
    "user-cap": _("Waits: you are at your limit of GPUs at once."),
    "sweep-cap": _("Waits: its sweep already runs as many jobs as it may."),
    "behind": _("Waits for GPUs behind other jobs."),
    "capacity": _("Next in line: waits for running jobs to end."),
    "preempting": _("Other jobs are being stopped to make room for it."),
}

#: Codes that mean something is wrong even though the status is not final.
PROBLEMS = frozenset(
    {
        "image_pull_failure",
        "invalid_image",
        "container_config_error",
        "container_start_error",
        "crash_loop",
        "unschedulable",
        "retrying",
        "rejected_by_cluster",
        "start_timeout",
        "no-model",
        "too-big",
    }
)

_STATUS_TONE = {
    states.SUCCEEDED: OK,
    states.FAILED: ERROR,
    states.TIMED_OUT: ERROR,
    states.LOST: WARN,
    states.CANCELLED: MUTED,
    states.PREEMPTED: WAIT,
    states.QUEUED: WAIT,
    states.ADMITTED: INFO,
    states.STARTING: INFO,
    states.RUNNING: INFO,
}


def is_problem(reason: str) -> bool:
    """A reason that says the job is stuck or failing (requeues after a loss and attempts
    given up count too: ``requeued_after_*``, ``*_too_often``)."""
    return (
        reason in PROBLEMS or reason.startswith("requeued_after_") or reason.endswith("_too_often")
    )


def tone(status: str, reason: str) -> str:
    """``ok``, ``info``, ``wait``, ``warn``, ``error`` or ``muted``: the colour the state
    is drawn in. A live job with a problem reason is a warning, whatever its status."""
    if status not in states.TERMINAL and is_problem(reason):
        return WARN
    return _STATUS_TONE.get(status, INFO)


def reason_text(reason: str) -> str:
    """The human message of a reason code ("" for none; an unknown code reads as itself)."""
    if not reason:
        return ""
    if reason in REASON_TEXT:
        return str(REASON_TEXT[reason])
    if reason.startswith("requeued_after_"):
        return str(_("A previous attempt was lost; the job waits to run again."))
    if reason.endswith("_too_often"):
        return str(_("Attempts kept failing to run; the job was given up."))
    if reason.startswith("preempted_"):
        return str(REASON_TEXT["preempted"])
    return reason.replace("_", " ").replace("-", " ")


def job_state(job: Any) -> dict[str, str]:
    """What the pages draw for a job's state (or for one of its events, by its
    ``to_status``): label, tone, human message, the raw text and whether something is
    wrong."""
    status = str(getattr(job, "status", None) or getattr(job, "to_status", ""))
    reason = str(job.reason or "")
    return {
        "label": str(STATUS_TEXT.get(status, status)),
        "tone": tone(status, reason),
        "text": reason_text(reason),
        # A job's message as it reads now (``Job.shown_message``), an event's as stored.
        "raw": str(messages.render(getattr(job, "shown_message", job.message) or "")),
        "problem": "1" if status not in states.TERMINAL and is_problem(reason) else "",
    }
