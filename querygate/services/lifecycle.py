"""The one writer of ``Query.status`` after the audit row is created.

Every change is a conditional UPDATE from the status the caller expects, along an edge of
``querygate.states.ALLOWED``: two processes racing on one query (an executor finishing, a
kill, the watchdog) cannot both apply a change; the loser's ``move`` returns 0 and it
re-reads. An edge not in the table is a programming error (``InvalidTransition``), caught
by the tests, never a silent write.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from portal.errors import Conflict
from querygate import states
from querygate.models import Query

log = logging.getLogger("karimasu.querygate")


class InvalidTransition(Conflict):
    code = "invalid_transition"


def move(rows: int | QuerySet[Query], source: str, target: str, **fields: Any) -> int:
    """Move the query ``rows`` (a pk, or a queryset) that are still in ``source`` to
    ``target``, writing ``fields`` in the same UPDATE; returns how many moved."""
    if not states.can_transition(source, target):
        raise InvalidTransition(
            _("A query cannot go from %(source)s to %(target)s.")
            % {"source": source, "target": target}
        )
    queryset = Query.objects.filter(pk=rows) if isinstance(rows, int) else rows
    moved = int(queryset.filter(status=source).update(status=target, **fields))
    if moved:
        log.info("query.transition rows=%s from=%s to=%s", moved, source, target)
    return moved


def check_initial(status: str) -> str:
    """``status`` if an audit row may be created in it (``states.INITIAL``)."""
    if status not in states.INITIAL:
        raise InvalidTransition(_("A query cannot be created %(status)s.") % {"status": status})
    return status
