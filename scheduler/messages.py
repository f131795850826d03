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
from functools import lru_cache
from typing import Any

from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_noop as N_

# --- written by the services (filled with ``stored``) ------------------------------------

REQUEUED_AFTER_PREEMPTION = N_("Requeued after preemption.")
PREEMPTED = N_("Stopped to make room for %(who)s: %(why)s. It is queued again as a new attempt.")
PREEMPTED_BY_JOB = N_("a %(gpus)s-GPU job of team %(team)s")
PREEMPTED_BY_OTHER = N_("another job")
PREEMPTED_RECLAIM = N_("that team is taking back GPUs it is guaranteed, which this job borrowed")
PREEMPTED_PRIORITY = N_("it has a higher priority class")
CANCELLED_BY = N_("Cancelled by %(user)s.")
CANCELLED_BY_BECAUSE = N_("Cancelled by %(user)s: %(reason)s")
CANCELLED_BY_SYSTEM = N_("Cancelled by the system.")
CANCELLED_BY_SYSTEM_BECAUSE = N_("Cancelled by the system: %(reason)s")
SESSION_STOPPED_BY = N_("stopped by %(user)s")
SESSION_STOPPED_BY_SYSTEM = N_("stopped by the system")
SESSION_BOOKING_ENDED = N_("the booking ended")
SESSION_TIME_UP = N_("its time was up")
SESSION_PREEMPTED = N_("it was preempted")
SESSION_IDLE = N_("the GPUs and the workspace were idle")
SESSION_ON_BOOKING = N_("Session %(session)s on booking %(booking)s.")
SESSION_ON_DEMAND = N_("On-demand session %(session)s.")
SESSION_ON_DEMAND_PREEMPTIBLE = N_("On-demand session %(session)s (preemptible).")
RUNTIME_EXCEEDED = N_("Ran for its max runtime of %(seconds)s s and was stopped.")
REJECTED_BY_CLUSTER = N_("The cluster refused this job: %(why)s")
ATTEMPT_LOST = N_("Attempt %(attempt)s was lost (%(reason)s); queued again.")
LOST_TOO_OFTEN = N_("Lost %(attempts)s times; giving up.")
GANG_RANK_FAILED = N_("Rank %(rank)s of the gang failed.")
GANG_RANK_MISSING = N_("Rank %(rank)s has no pod while others run.")

# --- why a queued job waits (``scheduler.core.cycle``: Waiting.detail) -------------------

WAIT_SWEEP_CAP = N_("sweep %(sweep)s runs %(running)s of %(parallelism)s")
WAIT_USER_CAP = N_("%(user)s uses %(used)s of %(cap)s GPUs")
WAIT_BUDGET = N_(
    "team %(team)s spent %(spent)s of %(budget)s GPU-hours this week; the job may need %(need)s"
)
WAIT_GUARANTEE_ONLY = N_(
    "non-preemptible work of team %(team)s runs only within its %(guaranteed)s guaranteed "
    "GPUs (%(used)s in use)"
)
WAIT_QUOTA = N_("team %(team)s uses its %(guaranteed)s guaranteed GPUs")
WAIT_BORROW_LIMIT = N_("team %(team)s may borrow at most %(limit)s GPUs")
WAIT_NO_MODEL = N_("no schedulable node has a GPU of model %(models)s")
WAIT_TOO_BIG_GANG = N_(
    "fewer than %(nodes)s schedulable nodes have %(gpus)s usable GPUs, %(cpu)sm CPU and "
    "%(memory)s MiB each"
)
WAIT_TOO_BIG = N_("no schedulable node has %(gpus)s usable GPUs, %(cpu)sm CPU and %(memory)s MiB")
WAIT_TO_STOP = N_("%(jobs)s to stop")
WAIT_STOPPING = N_("%(jobs)s stopping")
WAIT_CLAIMED = N_("its GPUs were claimed by job %(job)s")
WAIT_RESERVED = N_("free GPUs are booked or planned for others")
WAIT_BEHIND = N_("behind %(ahead)s jobs of higher rank")
WAIT_CAPACITY = N_("waiting for running jobs to end")

#: Every template a stored text may be made from (sentences and the phrases inside them).
TEMPLATES: tuple[str, ...] = tuple(
    value for name, value in sorted(globals().items()) if name.isupper() and isinstance(value, str)
)

#: How deep phrases may nest inside a stored text (a hostile text stops here).
_MAX_DEPTH = 2
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def stored(template: str, **params: Any) -> str:
    """The English text to store for ``template`` filled with ``params``."""
    return template % params


def _pattern(template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


#: (literal prefix, pattern, template): a stored text is tried only against the templates
#: its start agrees with.
_PATTERNS = tuple(
    (_PLACEHOLDER.split(t)[0], _pattern(t), t) for t in sorted(TEMPLATES, key=len, reverse=True)
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
        values = {
            name: (_fill(value, depth + 1) or value) if depth < _MAX_DEPTH else value
            for name, value in match.groupdict().items()
        }
        try:
            return translated % values
        except (KeyError, TypeError, ValueError):
            return None
    return None
