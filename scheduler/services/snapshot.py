"""Step 2 of the scheduling cycle: the core's view of the database (``core.Snapshot``).

Nodes and their GPUs (less what pods Karimasu did not create hold, and GPUs telemetry saw
busy outside Karimasu), the work that holds GPUs, the queue, the bookings in force, recent
usage (fair share), quotas and per-user caps, read as plain rows (``values_list``): 10k
queued jobs cost one pass. ``services.cycle`` plans on it and applies the decisions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.models import F, FloatField, Func, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce

from portal.accounts.models import Team
from scheduler import states
from scheduler.core import snapshot as snap
from scheduler.models import (
    LIVE_STATUSES,
    Gpu,
    Job,
    Node,
    PriorityClass,
    Reservation,
    ReservationSlot,
    Sweep,
    TeamPolicy,
    TeamQuota,
)
from scheduler.services.booking_policy import team_gpu_hours, team_zone, week_bounds
from scheduler.services.inventory import NodeCounts, outside_gpu_indices

USAGE_HORIZON = timedelta(days=28)  # four half-lives: older usage weighs < 1/16


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def build_snapshot(
    *, now: datetime, foreign_busy: frozenset[tuple[str, int]] = frozenset()
) -> snap.Snapshot:
    """The core's view of the database. Jobs and bookings are read as plain rows
    (`values_list`, one query each), not model instances: 10k queued jobs cost one pass."""
    return load_snapshot(now=now, foreign_busy=foreign_busy)[0]


# Per queued job id, its waiting fields as stored when the snapshot read the job's row:
# (reason, message, ETA in epoch seconds).
StoredWaiting = dict[int, tuple[str, str, float | None]]


def load_snapshot(
    *, now: datetime, foreign_busy: frozenset[tuple[str, int]] = frozenset()
) -> tuple[snap.Snapshot, StoredWaiting]:
    """``build_snapshot``, and each queued job's waiting fields as read with its row: what
    the cycle compares its waiting decisions with, so it writes only those that changed
    without reading the 10k queued rows a second time."""
    priorities = dict(PriorityClass.objects.values_list("name", "value"))
    allocations, held_indices = _allocations(now, priorities)
    nodes = _nodes(held_indices, foreign_busy)
    queue, stored = _queue(priorities)
    snapshot = snap.Snapshot(
        now=_ts(now),
        nodes=nodes,
        queue=queue,
        allocations=allocations,
        bookings=_bookings(now),
        usage=_usage(now),
        quotas=_quotas(now),
        user_gpu_caps=_user_caps(),
        config=production_config(),
    )
    return snapshot, stored


class _Epoch(Func):
    """A timestamp as seconds since the epoch (PostgreSQL): the float `datetime.timestamp()`
    gives (both round the exact microseconds once), without a datetime per row."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)::float8"
    output_field = FloatField()

    def get_db_converters(self, connection: Any) -> list[Any]:
        # The database gives a float8 (or NULL) already: no conversion per row, so the
        # rows that read it can come straight from the cursor (``_plain_rows``).
        return []


def epoch_seconds(column: str) -> Func | F:
    return epoch_seconds_of(F(column))


def epoch_seconds_of(expression: F | Func) -> Func | F:
    """``expression`` (a timestamp) as epoch seconds on PostgreSQL; as it is elsewhere
    (``as_timestamp`` reads either)."""
    return _Epoch(expression) if connection.vendor == "postgresql" else expression


def as_timestamp(value: float | datetime) -> float:
    return value if isinstance(value, float) else value.timestamp()


def _username() -> str:
    """The column behind `get_username()` of a job's owner, for `values_list`."""
    return f"owner__{get_user_model().USERNAME_FIELD}"


def _allocations(
    now: datetime, priorities: dict[str, int]
) -> tuple[tuple[snap.Allocation, ...], dict[str, set[int]]]:
    """Running work (and preempted jobs still in their grace period, or past it but not yet
    requeued when they name their preemptor: ``Allocation.preempted_for``) as the core's
    allocations, and the GPU indices they hold per node name. Read as plain rows: times as
    epoch seconds, JSON as text (parsed here only when not empty)."""
    rows = (
        Job.objects.filter(
            Q(status__in=states.ON_CLUSTER)
            | Q(status=states.PREEMPTED, terminating_until__gt=now)
            # Grace over (requeued later in this cycle): gone, but its GPUs are its preemptor's.
            | Q(
                status=states.PREEMPTED,
                terminating_until__isnull=False,
                preempted_for__isnull=False,
            ),
            node__isnull=False,
        )
        .annotate(
            # ``gpus_held_since``: its start, else its admission, else its submission.
            gpus_since=epoch_seconds_of(Coalesce("started_at", "admitted_at", "submitted_at")),
            terminating_s=epoch_seconds("terminating_until"),
            indices_json=Cast("gpu_indices", TextField()),
            placements_json=Cast("placements", TextField()),
        )
        .values_list(
            "pk", "team__slug", _username(), "node__name", "indices_json", "gpus_since",
            "max_runtime_s", "priority_class", "preemptible", "borrowed", "cpu_millis",
            "memory_mb", "sweep_id", "terminating_s", "placements_json", "preempted_for_id",
        )
    )  # fmt: skip
    allocations = []
    held: dict[str, set[int]] = {}
    now_s = _ts(now)
    for (
        pk, team, user, node, indices, since, runtime, priority, preemptible, borrowed, cpu,
        memory, sweep, terminating, placed, preempted_for,
    ) in _plain_rows(rows):  # fmt: skip
        pods = _pods(_json_list(placed))
        gpu_indices = tuple(_json_list(indices))
        ends = None if terminating is None else as_timestamp(terminating)
        gone = ends is not None and ends <= now_s  # grace over: holds nothing
        for pod_node, pod_indices in () if gone else pods or ((node, gpu_indices),):
            held.setdefault(pod_node, set()).update(pod_indices)
        allocations.append(
            snap.Allocation(
                job_id=str(pk),
                team=team,
                user=user,
                node=node,
                gpu_indices=gpu_indices,
                started_at=as_timestamp(since),
                max_runtime_s=float(runtime),
                priority=priorities.get(priority, 0),
                preemptible=preemptible,
                borrowed=borrowed,
                cpu_milli=cpu,
                memory_mib=memory,
                sweep_id=str(sweep) if sweep else None,
                terminating_until=ends,
                placements=pods,
                preempted_for=str(preempted_for) if ends and preempted_for else None,
            )
        )
    return tuple(allocations), held


def _json_list(text: str | None) -> list[Any]:
    """A JSON list column read as text (``Cast(..., TextField())``)."""
    return json.loads(text) if text and text != "[]" else []


def _pods(placements: list[dict[str, object]] | None) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """A gang's stored ``Job.placements`` as the core's ``Allocation.placements``."""
    return tuple(
        (str(p["node"]), tuple(int(i) for i in p["gpu_indices"]))  # type: ignore[attr-defined]
        for p in placements or ()
    )


# The columns of a queued job the core needs, as stored on the job's own row (names of
# teams and users and sweeps' caps are looked up each cycle: they live on other rows),
# then its waiting fields as the last cycle wrote them (``StoredWaiting``).
JOB_COLUMNS = (
    "pk", "team_id", "owner_id", "gpus", "max_runtime_s", "submitted", "models_json",
    "cpu_millis", "memory_mb", "priority_class", "preemptible", "attempt", "sweep_id", "nodes",
)  # fmt: skip
QUEUE_COLUMNS = (*JOB_COLUMNS, "reason", "message", "eta_s")
_WAITING = len(JOB_COLUMNS)  # where the waiting fields start in a row


def _queue(priorities: dict[str, int]) -> tuple[tuple[snap.QueuedJob, ...], StoredWaiting]:
    """The queued jobs, in no particular order (the core ranks them), built with
    ``snap.queued_job``, and their stored waiting fields. On PostgreSQL their rows come
    from ``QUEUE_ROWS``: only those that changed since the last cycle are read whole, and
    only those are built again, unless a name, a cap or a priority value they look up
    changed (then every job is)."""
    rows = QUEUE_ROWS
    fresh = rows.read()
    kept = [row for _, row in rows.kept.values()]
    teams = dict(Team.objects.filter(pk__in={r[1] for r in kept}).values_list("pk", "slug"))
    users = dict(
        get_user_model()
        .objects.filter(pk__in={r[2] for r in kept})
        .values_list("pk", get_user_model().USERNAME_FIELD)
    )
    caps = dict(
        Sweep.objects.filter(pk__in={r[12] for r in kept if r[12]}).values_list("pk", "parallelism")
    )
    names = (teams, users, caps, priorities)
    jobs = rows.jobs
    # ``names`` is None after a clear, or a cycle that failed while building: then all.
    if fresh is None or names != rows.names or rows.kept.keys() - jobs.keys() - fresh.keys():
        rows.jobs = jobs = {}
        todo = kept
    else:  # the jobs that left the queue
        for pk in jobs.keys() - rows.kept.keys():
            del jobs[pk]
        todo = list(fresh.values())
    rows.names = None
    # The acceptable models as JSON text, parsed once per distinct list (there are few).
    parsed: dict[str | None, frozenset[str]] = {}
    build, priority_of = snap.queued_job, priorities.get
    for (
        pk, team, user, gpus, runtime, submitted, models, cpu, memory, priority,
        preemptible, attempt, sweep, nodes,
    ) in todo:  # fmt: skip
        acceptable = parsed.get(models)
        if acceptable is None:
            acceptable = parsed[models] = _models(models)
        jobs[pk] = build(
            str(pk), teams[team], users[user], gpus, float(runtime), as_timestamp(submitted),
            acceptable, cpu, memory, priority_of(priority, 0), preemptible, attempt - 1,
            str(sweep) if sweep else None, caps.get(sweep) if sweep else None, nodes,
        )  # fmt: skip
    rows.names = names
    return tuple(jobs.values()), rows.stored


def _queue_query() -> QuerySet[Any, tuple[Any, ...]]:
    return (
        Job.objects.filter(status=states.QUEUED)
        .order_by()
        .annotate(
            models_json=Cast("gpu_models", TextField()),
            submitted=epoch_seconds("submitted_at"),
            eta_s=epoch_seconds("eta"),
        )
        .values_list(*QUEUE_COLUMNS)
    )


def _stored(row: tuple[Any, ...]) -> tuple[str, str, float | None]:
    """A queued row's waiting fields, its ETA as epoch seconds."""
    reason, message, eta = row[_WAITING : _WAITING + 3]
    return (reason, message, None if eta is None else as_timestamp(eta))


def row_version(table: str) -> str:
    """SQL for the version of a row of ``table`` (a quoted name or an alias): ``QueueRows``
    keeps rows by it, and the cycle's waiting UPDATE checks and returns it."""
    return f"{table}.xmin::text || {table}.ctid::text"


class QueueRows:
    """The queued jobs' rows (``QUEUE_COLUMNS``), kept between cycles by row version.

    A cycle with 10,000 queued jobs spent more reading them whole than deciding on them,
    though few change from one cycle to the next. On PostgreSQL every row version has an
    ``(xmin, ctid)`` pair of its own: the transaction that wrote it and where it lies; any
    UPDATE, even by the same transaction, writes a new version at a new place, and a place
    is reused only by a later transaction. So each cycle reads every queued job's version
    (two system columns) and reads whole only the rows whose version it has not kept; the
    rest come from the previous cycles. Elsewhere (SQLite) every row is read each time.

    ``kept`` holds each row's version and its ``JOB_COLUMNS``; ``stored`` its waiting
    fields; ``jobs`` the ``QueuedJob`` ``_queue`` built from it and the names, caps and
    priority values of ``names``.

    One per process, changed in place only by a cycle holding the cycle lock (PostgreSQL's
    advisory lock). SQLite has no such lock, so the demo's threaded worker may overlap two
    cycles: there every read is whole, and ``read`` and ``_queue`` build new dicts rather
    than change the ones another cycle may be reading.
    """

    def __init__(self) -> None:
        self.kept: dict[int, tuple[str, tuple[Any, ...]]] = {}
        self.stored: StoredWaiting = {}
        self.jobs: dict[int, snap.QueuedJob] = {}
        self.names: tuple[dict[Any, Any], ...] | None = None
        self.fetched = 0  # rows read whole by the last ``read`` (tests, benchmarks)

    def clear(self) -> None:
        self.kept, self.stored, self.jobs, self.names = {}, {}, {}, None

    def _all(self, rows: list[tuple[Any, ...]], versioned: bool) -> None:
        """Every queued row read whole (``versioned``: the row version last)."""
        self.kept = {row[0]: (row[-1] if versioned else "", row[:_WAITING]) for row in rows}
        self.stored = {row[0]: _stored(row) for row in rows}
        self.fetched = len(rows)

    def read(self) -> dict[int, tuple[Any, ...]] | None:
        """Bring ``kept`` and ``stored`` up to date: every queued row, at its newest
        version. Returns the rows (``JOB_COLUMNS``) read whole, those not kept before at
        their version, or None when every row was (the first read, most of the queue
        changed, or SQLite)."""
        query = _queue_query()
        db = connections[query.db]
        if db.vendor != "postgresql":
            self._all(list(query), versioned=False)
            return None
        table = db.ops.quote_name(Job._meta.db_table)
        version = row_version(table)
        with db.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {version} FROM {table} WHERE status = %s",  # noqa: S608 (names)
                [states.QUEUED],
            )
            versions = dict(cursor.fetchall())
        kept = self.kept
        unknown = ("", ())
        stale = {pk for pk, v in versions.items() if kept.get(pk, unknown)[0] != v}
        if len(stale) * 2 > len(versions):
            # Most of the queue changed (the first cycle): one read of it all, as it is now.
            whole = query.annotate(row_version=RawSQL(version, ()))  # noqa: S611 (names)
            self._all(_plain_rows(whole), versioned=True)
            return None
        fresh = {}
        if stale:
            changed = query.filter(pk__in=stale).annotate(
                row_version=RawSQL(version, ())  # noqa: S611 (names)
            )
            stored = self.stored
            for row in _plain_rows(changed):
                fresh[row[0]] = (row[-1], row[:_WAITING])
                stored[row[0]] = _stored(row)
        self.fetched = len(fresh)
        if stale or len(kept) != len(versions):
            # What is queued now, at its newest version; a row that changed and then left
            # the queue between the two reads is not kept (nor planned on).
            self.kept = {
                pk: fresh[pk] if pk in fresh else kept[pk]
                for pk in versions
                if pk in fresh or (pk in kept and pk not in stale)
            }
            stored = self.stored
            for pk in stored.keys() - self.kept.keys():
                del stored[pk]
        # else: every queued row is kept at its version, and no other row is kept.
        return {pk: row for pk, (_, row) in fresh.items() if pk in self.kept}

    def rewritten(self, versions: dict[int, str], stored: StoredWaiting) -> None:
        """The cycle wrote these queued jobs' waiting fields (``stored``, ETAs as epoch
        seconds), making the row versions ``versions`` (its UPDATE's ``RETURNING``, only
        of rows still at the version the snapshot read): keep them, so the next cycle does
        not read its own writes again. Nothing else in the rows changed; should the cycle's
        transaction roll back, no row will have that version and the next read reads the
        rows whole."""
        kept, known = self.kept, self.stored
        for pk, version in versions.items():
            row = kept.get(pk)
            if row is not None:
                kept[pk] = (version, row[1])
                known[pk] = stored[pk]


QUEUE_ROWS = QueueRows()


def _plain_rows(rows: QuerySet[Any, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows``' tuples straight from the database cursor when none of its columns needs a
    conversion by Django (true of the plain columns the snapshot reads on PostgreSQL);
    otherwise the queryset's own rows."""
    compiler = rows.query.get_compiler(using=rows.db)
    sql, params = compiler.as_sql()
    if compiler.get_converters([column for column, _, _ in compiler.select]):
        return list(rows)
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        fetched: list[tuple[Any, ...]] = cursor.fetchall()
    return fetched


def _models(text: str | None) -> frozenset[str]:
    return frozenset(json.loads(text) or ()) if text else frozenset()


def _bookings(now: datetime) -> tuple[snap.Booking, ...]:
    live = Reservation.objects.filter(status__in=LIVE_STATUSES, end__gt=now)
    indices: dict[int, list[int]] = {}
    for reservation, index in _plain_rows(
        ReservationSlot.objects.filter(reservation__in=live.values("pk"))
        .order_by()
        .values_list("reservation_id", "gpu__index")
    ):
        indices.setdefault(reservation, []).append(index)
    holder = f"holder__{get_user_model().USERNAME_FIELD}"
    rows = live.annotate(start_s=epoch_seconds("start"), end_s=epoch_seconds("end")).values_list(
        "pk", "node__name", "start_s", "end_s", holder, "team__slug", "shared_with_team"
    )
    return tuple(
        snap.Booking(
            id=str(pk),
            node=node,
            gpu_indices=tuple(sorted(indices.get(pk, ()))),
            start=as_timestamp(start),
            end=as_timestamp(end),
            user=user,
            team=team if shared else None,  # exclusive unless shared
        )
        for pk, node, start, end, user, team, shared in _plain_rows(rows)
    )


NODE_COLUMNS = (
    "pk", "name", "gpu_model", "cpu_allocatable_millis", "foreign_cpu_millis",
    "memory_allocatable_mb", "foreign_memory_mb", "cordoned", "ready", "foreign_gpus",
    "gpu_capacity", "gpu_allocatable", "labels",
)  # fmt: skip


def _nodes(
    held: dict[str, set[int]], foreign_busy: frozenset[tuple[str, int]]
) -> tuple[snap.Node, ...]:
    """The core's view of the nodes: what pods Karimasu did not create hold is taken off
    their CPU and memory, and as many of their GPUs as they hold are marked busy (never
    offered). Read as plain rows: nodes, then their present GPUs."""
    gpus: dict[int, list[tuple[int, str, bool]]] = {}
    for node_id, index, uuid, healthy in Gpu.objects.filter(
        node__gone_at__isnull=True, present=True
    ).values_list("node_id", "index", "uuid", "healthy"):
        gpus.setdefault(node_id, []).append((index, uuid, healthy))
    nodes = []
    for (
        pk, name, model, cpu, foreign_cpu, memory, foreign_memory, cordoned, ready,
        foreign, capacity, allocatable, labels,
    ) in Node.objects.filter(gone_at__isnull=True).values_list(*NODE_COLUMNS):  # fmt: skip
        present = gpus.get(pk, [])
        telemetry = frozenset(i for i, _, _ in present if (name, i) in foreign_busy)
        outside = outside_gpu_indices(
            NodeCounts(foreign, capacity, allocatable),
            [i for i, _, _ in present],
            held.get(name, set()),
            telemetry,
        )
        nodes.append(
            snap.Node(
                name=name,
                gpu_model=model,
                gpus=tuple(
                    snap.Gpu(
                        index=i,
                        uuid=uuid,
                        healthy=healthy,
                        foreign_busy=i in telemetry or i in outside,
                    )
                    for i, uuid, healthy in present
                ),
                cpu_milli=max(0, cpu - foreign_cpu),
                memory_mib=max(0, memory - foreign_memory),
                cordoned=cordoned,
                ready=ready,
                topology=str((labels or {}).get(settings.KARIMASU_TOPOLOGY_LABEL, "")),
            )
        )
    return tuple(nodes)


def production_config() -> snap.Config:
    """Production's policy switches. Bookings are never released as no-shows by the core:
    idle bookings get a notice and are reclaimed from telemetry (`services/idle.py`)."""
    return snap.Config(packing=snap.Packing(settings.KARIMASU_PACKING), booking_no_show_s=None)


def _usage(now: datetime) -> tuple[snap.UsageRecord, ...]:
    """Finished jobs' GPU-seconds (running ones are added by the core)."""
    done = Job.objects.filter(
        finished_at__gte=now - USAGE_HORIZON, started_at__isnull=False, gpus__gt=0
    ).values_list("team__slug", _username(), "gpus", "nodes", "started_at", "finished_at")
    return tuple(
        snap.UsageRecord(
            team=team,
            user=user,
            gpu_seconds=gpus * nodes * (finished - started).total_seconds(),
            at=finished.timestamp(),
        )
        for team, user, gpus, nodes, started, finished in done
    )


def _quotas(now: datetime) -> dict[str, snap.TeamQuota]:
    quotas = {q.team_id: q for q in TeamQuota.objects.all()}
    budgets = {
        p.team_id: p
        for p in TeamPolicy.objects.filter(weekly_gpu_hours__isnull=False).select_related("team")
    }
    result = {}
    for team_id in set(quotas) | set(budgets):
        quota, policy = quotas.get(team_id), budgets.get(team_id)
        team = (quota or policy).team  # type: ignore[union-attr]
        result[team.slug] = snap.TeamQuota(
            team=team.slug,
            guaranteed_gpus=quota.guaranteed_gpus if quota else 0,
            borrowing_allowed=quota.borrowing_allowed if quota else True,
            borrowing_limit=quota.borrowing_limit if quota else None,
            share_weight=quota.share_weight if quota else 1.0,
            weekly_gpu_hours=policy.weekly_gpu_hours if policy else None,
            spent_gpu_hours=team_gpu_hours(team, *week_bounds(now, team_zone(policy)), now=now)
            if policy
            else 0.0,
        )
    return result


def _user_caps() -> dict[str, int]:
    caps: dict[str, int] = {}
    for quota in TeamQuota.objects.filter(user_gpu_cap__isnull=False).prefetch_related(
        "team__memberships__user"
    ):
        cap = quota.user_gpu_cap
        if cap is None:  # never: filtered above
            continue
        for membership in quota.team.memberships.all():
            name = membership.user.get_username()
            caps[name] = min(caps.get(name, cap), cap)
    return caps
