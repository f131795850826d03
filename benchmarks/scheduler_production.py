"""The production scheduling cycle on PostgreSQL (issue 17): ``services.cycle.run_cycle``
loads the snapshot from the database, plans with the core and writes every decision back
(admissions, preemptions, each waiting job's reason and ETA, the line of waiting jobs) in one
transaction.

Seeded from the same synthetic cluster as ``manage.py sched bench`` (``sim.synthetic``):
200 nodes x 8 GPUs, about 70% busy with running jobs, 10,000 queued jobs, 1,000 bookings,
five teams with quotas. Five scenarios: the first cycle (no waiting row recorded yet:
every one is written; ~300 admissions, ~60 preemptions), then the second and the third
cycle, 5 s apart (``KARIMASU_CYCLE_SECONDS``), each after committing the one before and
starting what it admitted, as the cluster would (only the waiting rows that changed are
written; the third is quiet: nothing to admit), and a fourth and a fifth, each 5 s later
and after ``FINISHED`` running jobs ended: they admit, and the jobs behind move up (the
line changes, and reasons: the busy steady state; the fifth follows a busy cycle). In
each, every timed cycle runs inside a transaction that is rolled back, so every
repetition sees the same database (vacuumed before each, so that the dead rows the
others left do not count). Reported: p50
of the whole ``run_cycle`` and of its parts (building the snapshot, ``plan_cycle``, the
waiting rows, the rest: admissions, preemptions, releases), the waiting rows written, and
the queued rows read whole (``services.snapshot.QUEUE_ROWS``: each timed cycle starts with
the rows kept as the cycle before left them, none before the first cycle).

Baseline in the same run: ``SCHEDULER_PRODUCTION_BASELINE=DIR`` (an exported older tree,
e.g. ``git archive main | tar -x -C DIR``) times that tree's ``services/cycle.py`` and
``services/snapshot.py`` too (the rest of the code, the core included, is this tree's),
alternating with this one's, cycle by cycle. The older tree must have this tree's schema
(from migration 0019, ``QueueOrder``, on): to compare with one before, run each tree's
benchmark in turn on its own database.

Needs PostgreSQL: run with ``DATABASE_URL=postgres://.../DB`` pointing at a scratch database
(it is migrated and filled, and emptied afterwards), e.g.
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/karimasu_bench python -m benchmarks
scheduler_production``. Skipped on SQLite.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from portal.accounts.models import Membership, Team
from scheduler import states
from scheduler.models import Gpu, Job, JobEvent, Node, Reservation, ReservationSlot, TeamQuota
from scheduler.services import cycle as services_cycle
from scheduler.services.snapshot import QUEUE_ROWS
from scheduler.sim.synthetic import synthetic_snapshot

QUEUED, NODES, GPUS, BOOKINGS, REPEATS = 10_000, 200, 8, 1_000, 5
FINISHED = 8  # running jobs that end before the fourth cycle


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _seed() -> float:
    snap = synthetic_snapshot(queued=QUEUED, nodes=NODES, gpus_per_node=GPUS, reservations=BOOKINGS)
    now = _dt(snap.now)
    user_model = get_user_model()
    teams = {
        t: Team.objects.create(slug=t, name=t)
        for t in sorted({j.team for j in snap.queue} | {a.team for a in snap.allocations})
    }
    for slug, team in teams.items():
        quota = snap.quota(slug)
        TeamQuota.objects.create(team=team, guaranteed_gpus=quota.guaranteed_gpus)
    names = sorted({j.user for j in snap.queue} | {a.user for a in snap.allocations} | {"booker"})
    users = {n: user_model.objects.create(username=n) for n in names}
    for name, user in users.items():
        slug = name.rsplit("-u", 1)[0]
        Membership.objects.create(team=teams.get(slug, next(iter(teams.values()))), user=user)
    nodes = {
        n.name: Node.objects.create(
            name=n.name,
            gpu_model=n.gpu_model,
            gpu_capacity=len(n.gpus),
            gpu_allocatable=len(n.gpus),
            cpu_allocatable_millis=n.cpu_milli,
            memory_allocatable_mb=n.memory_mib,
            ready=True,
            first_seen_at=now,
            last_seen_at=now,
        )
        for n in snap.nodes
    }
    gpus = {
        (g.node.name, g.index): g
        for g in Gpu.objects.bulk_create(
            Gpu(node=nodes[n.name], index=g.index, model=n.gpu_model)
            for n in snap.nodes
            for g in n.gpus
        )
    }
    common = {"image": "pytorch/pytorch:2.4", "cpu_millis": 0, "memory_mb": 0}
    Job.objects.bulk_create(
        [
            Job(
                name=a.job_id,
                owner=users[a.user],
                team=teams[a.team],
                gpus=a.gpus,
                max_runtime_s=int(a.max_runtime_s),
                status=states.RUNNING,
                node=nodes[a.node],
                gpu_indices=list(a.gpu_indices),
                borrowed=a.borrowed,
                submitted_at=_dt(a.started_at),
                admitted_at=_dt(a.started_at),
                started_at=_dt(a.started_at),
                **common,
            )
            for a in snap.allocations
        ]
        + [
            Job(
                name=j.id,
                owner=users[j.user],
                team=teams[j.team],
                gpus=j.gpus,
                gpu_models=sorted(j.models),
                max_runtime_s=int(j.max_runtime_s),
                priority_class="high" if j.priority > 0 else "normal",
                submitted_at=_dt(j.submitted_at),
                **common,
            )
            for j in snap.queue
        ],
        batch_size=2000,
    )
    booker, team = users["booker"], next(iter(teams.values()))
    taken: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for b in snap.bookings:
        spans = [taken.setdefault((b.node, g), []) for g in b.gpu_indices]
        if any(s < b.end and b.start < e for span in spans for s, e in span):
            continue  # the database refuses overlapping bookings of one GPU
        for span in spans:
            span.append((b.start, b.end))
        r = Reservation.objects.create(
            holder=booker, team=team, node=nodes[b.node], start=_dt(b.start), end=_dt(b.end),
            created_at=now,
        )  # fmt: skip
        ReservationSlot.objects.bulk_create(
            ReservationSlot(reservation=r, gpu=gpus[(b.node, g)], start=r.start, end=r.end)
            for g in b.gpu_indices
        )
    print(
        f"scheduler_production: {len(snap.allocations)} running, {len(snap.queue)} queued, "
        f"{Reservation.objects.count()} bookings (of {len(snap.bookings)}: overlaps skipped)"
    )
    return snap.now


def _start_admitted(at: datetime) -> None:
    """The jobs the cycle before admitted run by the next one, as they would once the
    cycle submitted them (the benchmark runs cycles without a cluster)."""
    Job.objects.filter(status=states.ADMITTED).update(
        status=states.RUNNING, started_at=at, reason="running"
    )


def _finish(count: int, at: datetime) -> None:
    """``count`` running jobs (the first by id) end at ``at``, as the watcher records it."""
    with transaction.atomic():
        ended = list(
            Job.objects.filter(status=states.RUNNING).order_by("pk").values_list("pk", flat=True)
        )[:count]
        Job.objects.filter(pk__in=ended).update(
            status=states.SUCCEEDED, finished_at=at, exit_code=0, reason="succeeded"
        )


class _Rollback(Exception):
    pass


PARTS = ("snapshot", "plan", "waiting")
CYCLE_PY = ("scheduler", "services", "cycle.py")
SNAPSHOT_PY = ("scheduler", "services", "snapshot.py")


def _load(name: str, path: Path) -> ModuleType:
    """A private copy of a ``services/cycle.py`` (this tree's, or that of an exported older
    tree: ``git archive main | tar -x -C DIR``); everything it imports is this tree's."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _instrument(module: ModuleType, parts: dict[str, list[float]], written: list[int]) -> None:
    """Time the snapshot, the plan and the waiting rows of ``module.run_cycle`` (they are
    looked up in the module when called), and count the waiting rows it writes."""
    loader = "load_snapshot" if hasattr(module, "load_snapshot") else "build_snapshot"
    originals = {
        "snapshot": getattr(module, loader),
        "plan": module.decide,
        "waiting": module._record_waiting,
    }

    def timed(part: str) -> Callable[..., object]:
        original = originals[part]

        def wrapper(*args: object, **kwargs: object) -> object:
            t = time.perf_counter()
            result = original(*args, **kwargs)
            parts[part].append(time.perf_counter() - t)
            return result

        return wrapper

    setattr(module, loader, timed("snapshot"))
    module.decide = timed("plan")
    module._record_waiting = timed("waiting")
    if hasattr(module, "_write_waiting"):
        write = module._write_waiting

        def counted(rows: dict[int, object]) -> object:
            written.append(len(rows))
            return write(rows)

        module._write_waiting = counted


def _timed(module: ModuleType, now: datetime, kept: Kept | None) -> float:
    # The rolled-back rewrites of the cycles before leave dead rows (the baseline's: every
    # queued job's, each cycle); each timed cycle starts from a vacuumed table.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE scheduler_job")
    # The queued rows the scheduler process kept from the cycles before (none before the
    # first cycle), as a real cycle at this point would find them: each code its own.
    rows = getattr(module, "queue_rows", None)
    if rows is not None:
        rows.clear()
        for name, value in (kept or {}).items():
            setattr(rows, name, dict(value) if isinstance(value, dict) else value)
    start = time.perf_counter()
    try:
        with transaction.atomic():
            module.run_cycle(None, now=now, foreign_busy=frozenset())
            raise _Rollback
    except _Rollback:
        pass
    return time.perf_counter() - start


Samples = dict[str, dict[str, list[float]]]
Kept = dict[str, Any]  # a ``QueueRows``' attributes by name (``kept``, ...)


def _scenario(
    name: str,
    codes: dict[str, ModuleType],
    now: datetime,
    samples: Samples,
    written: list[int],
    kept: dict[str, Kept],
) -> dict[str, float]:
    """REPEATS cycles of each code, alternating (a busy machine slows them alike), each
    rolled back; prints p50 of the whole cycle and of its parts. Returns the totals' p50."""
    totals: dict[str, float] = {}
    for label, module in codes.items():
        _timed(module, now, kept.get(label))  # warm-up
    fetched: list[int] = []
    for series in [written, *(s for parts in samples.values() for s in parts.values())]:
        series.clear()
    for _ in range(REPEATS):
        for label, module in codes.items():
            samples[label]["total"].append(_timed(module, now, kept.get(label)))
            if label == "new":
                fetched.append(QUEUE_ROWS.fetched)
    for label, parts in samples.items():
        # The rest (admissions, preemptions, releases, the lock), cycle by cycle.
        other = [total - sum(parts[p][i] for p in PARTS) for i, total in enumerate(parts["total"])]
        p50 = {k: statistics.median(v) * 1000 for k, v in [*parts.items(), ("other", other)]}
        totals[label] = p50["total"]
        ratio = (
            f", {p50['total'] / totals['baseline']:.3f}x baseline"
            if "baseline" in totals and label != "baseline"
            else ""
        )
        rows = (
            f", {statistics.median(written):.0f} waiting rows written, "
            f"{statistics.median(fetched):.0f} queued rows read whole"
            if written and label == "new"
            else ""
        )
        print(
            f"scheduler_production [{name}] {label}: run_cycle p50 {p50['total']:.0f} ms = "
            f"snapshot {p50['snapshot']:.0f} ms + plan {p50['plan']:.0f} ms + waiting rows "
            f"{p50['waiting']:.0f} ms + other writes {p50['other']:.0f} ms{rows}{ratio}"
        )
    return totals


def run(keep: bool = False) -> None:
    if connection.vendor != "postgresql":
        print("scheduler_production: needs PostgreSQL (DATABASE_URL=postgres://...), skipped")
        return
    baseline = os.environ.get("SCHEDULER_PRODUCTION_BASELINE")
    codes: dict[str, ModuleType] = {}
    if baseline:
        codes["baseline"] = _load("baseline_cycle", Path(baseline, *CYCLE_PY))
        # That tree's snapshot loader too, where it has one (the snapshot is a third of
        # a cycle); everything else it imports is this tree's.
        loader = Path(baseline, *SNAPSHOT_PY)
        if loader.exists():
            old = _load("baseline_snapshot", loader)
            codes["baseline"].build_snapshot = old.build_snapshot
            # Its own kept rows, where it keeps any (``QUEUE_ROWS``), reset like this tree's.
            codes["baseline"].queue_rows = getattr(old, "QUEUE_ROWS", None)
    codes["new"] = _load("new_cycle", Path(services_cycle.__file__))
    codes["new"].queue_rows = QUEUE_ROWS
    with transaction.atomic():
        if Job.objects.exists():
            print("scheduler_production: the database has jobs already; give a scratch one")
            return
        started = time.perf_counter()
        now = _dt(_seed())
        print(f"scheduler_production: seeded in {time.perf_counter() - started:.1f} s")
    print(
        f"scheduler_production {QUEUED:,} queued, {NODES}x{GPUS} GPUs, {BOOKINGS:,} bookings, "
        f"PostgreSQL, {REPEATS} cycles of each code, alternating, each rolled back"
        + (f"; baseline: {baseline}" if baseline else "")
    )
    samples: Samples = {label: {"total": [], **{p: [] for p in PARTS}} for label in codes}
    written: list[int] = []
    for label, module in codes.items():
        _instrument(module, samples[label], written if label == "new" else [])
    try:
        # 1. No cycle ran yet: every waiting row is new, ~300 admissions and ~60 preemptions.
        _scenario("first cycle", codes, now, samples, written, {})
        # 2. and 3. The cycles every 5 s after it: each one before is committed. 4. and 5.
        # As 3, but FINISHED running jobs ended since: the cycle admits, the rest move up.
        for n in (2, 3, 4, 5):
            later = now + timedelta(seconds=5 * (n - 1))
            # What each code's snapshot would read at the start of the cycle before (this
            # tree's reads it in the cycle itself).
            baseline_rows = getattr(codes.get("baseline"), "queue_rows", None)
            if baseline_rows is not None:
                baseline_rows.read()
            with transaction.atomic():
                services_cycle.run_cycle(
                    None, now=later - timedelta(seconds=5), foreign_busy=frozenset()
                )
            _start_admitted(later - timedelta(seconds=4))
            name = f"cycle {n}, {5 * (n - 1)} s later"
            if n >= 4:
                _finish(FINISHED, later - timedelta(seconds=1))
                name += f", {FINISHED} running jobs ended"
            kept = {  # as that cycle left them
                label: {
                    name: dict(value) if isinstance(value, dict) else value
                    for name, value in vars(module.queue_rows).items()
                }
                for label, module in codes.items()
                if getattr(module, "queue_rows", None) is not None
            }
            _scenario(name, codes, later, samples, written, kept)
    finally:
        if not keep:
            with transaction.atomic():
                JobEvent.objects.all().delete()
                Job.objects.all().delete()
                ReservationSlot.objects.all().delete()
                Reservation.objects.all().delete()
                Gpu.objects.all().delete()
                Node.objects.all().delete()
                TeamQuota.objects.all().delete()
                Membership.objects.all().delete()
                Team.objects.all().delete()
                get_user_model().objects.all().delete()
