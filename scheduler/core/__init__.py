"""Pure scheduling policy: imports no Django, opens no connection, reads no clock.

``plan_cycle(Snapshot) -> CycleResult`` is the whole interface: the services layer builds a
``Snapshot`` from the database and applies the ``Admit`` / ``Preempt`` /
``ReleaseReservation`` decisions; ``Waiting`` rows carry each queued job's reason, position
and ETA. The trace simulator (``scheduler.sim``) drives the very same function.

A ``QueuedJob`` with ``nodes`` > 1 is a gang, placed all or nothing (``gangs``); its
``Admit`` lists every pod in ``placements`` (``Admit.pods``).

The hot modules may run compiled (``scripts/build_core.py``, mypyc, into ``_compiled/``):
this package then finds them there first, but only if that build is of these very sources
(``SOURCES.json``) and ``KARIMASU_PURE_CORE`` is not ``1``; ``COMPILED`` says which ran.
"""

# First: points this package at the compiled modules, when they are fresh (``_native``).
from scheduler.core._native import COMPILED
from scheduler.core.cache import ClusterUsage
from scheduler.core.cycle import plan_cycle
from scheduler.core.decisions import (
    Admit,
    CycleResult,
    Preempt,
    PreemptReason,
    Reason,
    ReleaseReservation,
    Waiting,
)
from scheduler.core.snapshot import (
    Allocation,
    Booking,
    Config,
    Gpu,
    Node,
    Packing,
    QueuedJob,
    Snapshot,
    TeamQuota,
    UsageRecord,
)

__all__ = [
    "COMPILED",
    "Admit",
    "Allocation",
    "Booking",
    "ClusterUsage",
    "Config",
    "CycleResult",
    "Gpu",
    "Node",
    "Packing",
    "Preempt",
    "PreemptReason",
    "QueuedJob",
    "Reason",
    "ReleaseReservation",
    "Snapshot",
    "TeamQuota",
    "UsageRecord",
    "Waiting",
    "plan_cycle",
]
