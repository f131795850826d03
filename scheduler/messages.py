"""What the scheduler stored in English, shown in the reader's language.

Background work (the scheduling cycle, reconcile, the idle culler, a cancel by the system)
writes a job's ``message`` and its timeline events (``JobEvent.message``) in English, for
whoever reads them later, in whatever language. Each such text is made from one of the
templates below (``%(name)s`` placeholders; the writers fill them with ``stored``, or the
core, which knows no Django, writes the same English with f-strings: a test keeps the two in
step). At the edge (the job and session APIs, the job pages) ``render`` finds the template a
stored text was made from, translates it with ``gettext`` in the active language (the
user's setting or ``Accept-Language``) and fills it with the values read back from the
text; a value that is itself a known phrase (``another job``, ``the booking ended``) is
rendered too.

A text no template made (the cluster's own words, an admin's free-text reason), or a reader
whose language has no translation: the stored text is shown as it is, byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.utils.translation import get_language, gettext, gettext_noop

# --- written by the services (filled with ``stored``) ------------------------------------

REQUEUED_AFTER_PREEMPTION = gettext_noop("Requeued after preemption.")
PREEMPTED = gettext_noop(
    "Stopped to make room for %(who)s: %(why)s. It is queued again as a new attempt."
)
PREEMPTED_BY_JOB = gettext_noop("a %(gpus)s-GPU job of team %(team)s")
PREEMPTED_BY_OTHER = gettext_noop("another job")
PREEMPTED_RECLAIM = gettext_noop(
    "that team is taking back GPUs it is guaranteed, which this job borrowed"
)
PREEMPTED_PRIORITY = gettext_noop("it has a higher priority class")
CANCELLED_BY = gettext_noop("Cancelled by %(user)s.")
CANCELLED_BY_BECAUSE = gettext_noop("Cancelled by %(user)s: %(reason)s")
CANCELLED_BY_SYSTEM = gettext_noop("Cancelled by the system.")
CANCELLED_BY_SYSTEM_BECAUSE = gettext_noop("Cancelled by the system: %(reason)s")
SESSION_STOPPED_BY = gettext_noop("stopped by %(user)s")
SESSION_STOPPED_BY_SYSTEM = gettext_noop("stopped by the system")
SESSION_BOOKING_ENDED = gettext_noop("the booking ended")
SESSION_TIME_UP = gettext_noop("its time was up")
SESSION_PREEMPTED = gettext_noop("it was preempted")
SESSION_IDLE = gettext_noop("the GPUs and the workspace were idle")
SESSION_ON_BOOKING = gettext_noop("Session %(session)s on booking %(booking)s.")
SESSION_ON_DEMAND = gettext_noop("On-demand session %(session)s.")
SESSION_ON_DEMAND_PREEMPTIBLE = gettext_noop("On-demand session %(session)s (preemptible).")
RUNTIME_EXCEEDED = gettext_noop("Ran for its max runtime of %(seconds)s s and was stopped.")
REJECTED_BY_CLUSTER = gettext_noop("The cluster refused this job: %(why)s")
ATTEMPT_LOST = gettext_noop("Attempt %(attempt)s was lost (%(reason)s); queued again.")
LOST_TOO_OFTEN = gettext_noop("Lost %(attempts)s times; giving up.")
GANG_RANK_FAILED = gettext_noop("Rank %(rank)s of the gang failed.")
GANG_RANK_MISSING = gettext_noop("Rank %(rank)s has no pod while others run.")
# A waiting container (``scheduler.cluster.mapping``): what it means, the cluster's reason
# (and its own words). ``explain`` must be one of the phrases below for the text to match.
CLUSTER_WAITING = gettext_noop("%(explain)s (%(waiting)s)")
CLUSTER_WAITING_SAID = gettext_noop("%(explain)s (%(waiting)s: %(message)s)")
CLUSTER_PULL_FAILURE = gettext_noop(
    "The image cannot be pulled: check its name and tag and the registry's pull secret"
)
CLUSTER_INVALID_IMAGE = gettext_noop("The image reference is not valid")
CLUSTER_NEVER_PULL = gettext_noop("The image is not on the node and may not be pulled")
CLUSTER_CONFIG_ERROR = gettext_noop(
    "The container's configuration is incomplete (a missing Secret or ConfigMap?)"
)
CLUSTER_CREATE_ERROR = gettext_noop(
    "The container could not be created (a driver or runtime problem on the node?)"
)
CLUSTER_RUN_ERROR = gettext_noop(
    "The container could not be started (its command, or the node's GPU driver?)"
)
CLUSTER_CRASH_LOOP = gettext_noop(
    "The container keeps exiting and is restarted after a growing delay: see its log"
)

# --- why a queued job waits (``scheduler.core.cycle``: Waiting.detail) -------------------

WAIT_SWEEP_CAP = gettext_noop("sweep %(sweep)s runs %(running)s of %(parallelism)s")
WAIT_USER_CAP = gettext_noop("%(user)s uses %(used)s of %(cap)s GPUs")
WAIT_BUDGET = gettext_noop(
    "team %(team)s spent %(spent)s of %(budget)s GPU-hours this week; the job may need %(need)s"
)
WAIT_GUARANTEE_ONLY = gettext_noop(
    "non-preemptible work of team %(team)s runs only within its %(guaranteed)s guaranteed "
    "GPUs (%(used)s in use)"
)
WAIT_QUOTA = gettext_noop("team %(team)s uses its %(guaranteed)s guaranteed GPUs")
WAIT_BORROW_LIMIT = gettext_noop("team %(team)s may borrow at most %(limit)s GPUs")
WAIT_NO_NODES = gettext_noop(
    "no node is schedulable: none has joined, or all are cordoned or not ready"
)
WAIT_NO_MODEL = gettext_noop("no schedulable node has a GPU of model %(models)s")
WAIT_TOO_BIG_GANG = gettext_noop(
    "fewer than %(nodes)s schedulable nodes have %(gpus)s usable GPUs, %(cpu)sm CPU and "
    "%(memory)s MiB each"
)
WAIT_TOO_BIG = gettext_noop(
    "no schedulable node has %(gpus)s usable GPUs, %(cpu)sm CPU and %(memory)s MiB"
)
WAIT_TO_STOP = gettext_noop("%(jobs)s to stop")
WAIT_STOPPING = gettext_noop("%(jobs)s stopping")
WAIT_CLAIMED = gettext_noop("its GPUs were claimed by job %(job)s")
WAIT_RESERVED = gettext_noop("free GPUs are booked or planned for others")
WAIT_BEHIND = gettext_noop("behind %(ahead)s jobs of higher rank")
# As stored (the core's ``BEHIND_DETAIL``): the count is the line's, filled in when read
# (``scheduler.models.jobs.waiting_message``).
WAIT_BEHIND_OTHERS = gettext_noop("behind other jobs of higher rank")
WAIT_CAPACITY = gettext_noop("waiting for running jobs to end")

#: What ``explain`` may be (matched as these exact words, whatever brackets they hold).
CLUSTER_PHRASES = (
    CLUSTER_PULL_FAILURE,
    CLUSTER_INVALID_IMAGE,
    CLUSTER_NEVER_PULL,
    CLUSTER_CONFIG_ERROR,
    CLUSTER_CREATE_ERROR,
    CLUSTER_RUN_ERROR,
    CLUSTER_CRASH_LOOP,
)

#: Every template a stored text may be made from (sentences and the phrases inside them).
TEMPLATES: tuple[str, ...] = tuple(
    value for name, value in sorted(globals().items()) if name.isupper() and isinstance(value, str)
)

#: Params that must be a known phrase for their template to match (a template of nothing
#: but placeholders would otherwise match any text).
_PHRASES_ONLY = frozenset({"explain"})

#: How deep phrases may nest inside a stored text (a hostile text stops here).
_MAX_DEPTH = 2
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def stored(template: str, **params: Any) -> str:
    """The English text to store for ``template`` filled with ``params``."""
    return template % params


def _pattern(template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)
    regex = "".join(
        re.escape(part)
        if i % 2 == 0
        else f"(?P<{part}>{'|'.join(map(re.escape, CLUSTER_PHRASES))})"
        if part in _PHRASES_ONLY
        else f"(?P<{part}>.+?)"
        for i, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


#: (literal prefix, pattern, template): a stored text is tried only against the templates
#: its start agrees with. Templates without placeholders first (a text equal to one is
#: that one, even if a template with a placeholder would match it too), then longest first.
_PATTERNS = tuple(
    (_PLACEHOLDER.split(t)[0], _pattern(t), t)
    for t in sorted(TEMPLATES, key=lambda t: (_PLACEHOLDER.search(t) is not None, -len(t)))
)


def render(text: Any) -> Any:
    """``text`` (a stored message) in the active language; as stored when no template made
    it, or the language has no translation of it (English: the stored bytes)."""
    if not isinstance(text, str) or not text:
        return text
    language = get_language() or ""
    if not language or language.split("-")[0] == "en":
        return text
    return _render(text, language)


def _as_stored(text: Any) -> Any:
    return text


def renderer() -> Callable[[Any], Any]:
    """``render`` for the active language, looked up once (a list renders many rows):
    the identity for an English reader."""
    language = get_language() or ""
    if not language or language.split("-")[0] == "en":
        return _as_stored
    return render


@lru_cache(maxsize=4096)
def _render(text: str, language: str) -> str:  # ``language``: the cache's key
    shown = _fill(text, 0)
    return text if shown is None else shown


def _fill(text: str, depth: int) -> str | None:
    for prefix, pattern, template in _PATTERNS:
        if not text.startswith(prefix):
            continue
        match = pattern.fullmatch(text)
        if match is None:
            continue
        translated = gettext(template)
        if translated == template:
            return None
        values = {}
        for name, value in match.groupdict().items():
            shown = _fill(value, depth + 1) if depth < _MAX_DEPTH else None
            if shown is None and name in _PHRASES_ONLY:
                break
            values[name] = value if shown is None else shown
        else:
            try:
                return translated % values
            except (KeyError, TypeError, ValueError):
                return None
        continue
    return None


# --- the priority classes every site starts with (migration 0005) -------------------------

#: Name -> its words for people (the name itself stays the API's identifier).
PRIORITY_LABELS = {
    "low": gettext_noop("Low"),
    "normal": gettext_noop("Normal"),
    "high": gettext_noop("High"),
}
#: The default classes' descriptions as the migration stored them.
PRIORITY_DESCRIPTIONS = frozenset(
    {
        gettext_noop("Runs when nothing else waits; first to be preempted."),
        gettext_noop("The default."),
        gettext_noop("Deadlines. May preempt lower, preemptible work."),
    }
)


def priority_label(name: str) -> str:
    """A priority class's name for people: a default class's translated, any other as it is."""
    label = PRIORITY_LABELS.get(name)
    return gettext(label) if label is not None else name


def priority_description(description: str) -> str:
    """A priority class's description, translated when it is a default class's own."""
    return gettext(description) if description in PRIORITY_DESCRIPTIONS else description
