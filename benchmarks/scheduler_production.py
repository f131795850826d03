"""The production scheduling cycle on PostgreSQL (issue 17): ``services.cycle.run_cycle``
loads the snapshot from the database, plans with the core and writes every decision back
(admissions, preemptions, each waiting job's reason, position and ETA) in one transaction.

Seeded from the same synthetic cluster as ``manage.py sched bench`` (``sim.synthetic``):
200 nodes x 8 GPUs, about 70% busy with running jobs, 10,000 queued jobs, 1,000 bookings,
five teams with quotas. Each timed cycle runs inside a transaction that is rolled back, so
every repetition sees the same database. Reported: p50 of the whole ``run_cycle`` and of its
parts (building the snapshot, ``plan_cycle``), so the database's share is visible.

Needs PostgreSQL: run with ``DATABASE_URL=postgres://.../DB`` pointing at a scratch database
(it is migrated and filled; ``--keep`` leaves the rows), e.g.
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/karimasu_bench python -m benchmarks
scheduler_production``. Skipped on SQLite.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from portal.accounts.models import Membership, Team
from scheduler import states
from scheduler.models import Gpu, Job, Node, Reservation, ReservationSlot, TeamQuota
from scheduler.services import cycle as services_cycle
from scheduler.sim.synthetic import synthetic_snapshot

QUEUED, NODES, GPUS, BOOKINGS, REPEATS = 10_000, 200, 8, 1_000, 5


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


class _Rollback(Exception):
    pass


def _timed(fn: object, now: datetime) -> float:
    start = time.perf_counter()
    try:
        with transaction.atomic():
            fn(None, now=now, foreign_busy=frozenset())  # type: ignore[operator]
            raise _Rollback
    except _Rollback:
        pass
    return time.perf_counter() - start


def run(keep: bool = False) -> None:
    if connection.vendor != "postgresql":
        print("scheduler_production: needs PostgreSQL (DATABASE_URL=postgres://...), skipped")
        return
    with transaction.atomic():
        if Job.objects.exists():
            print("scheduler_production: the database has jobs already; give a scratch one")
            return
        started = time.perf_counter()
        now = _dt(_seed())
        print(f"scheduler_production: seeded in {time.perf_counter() - started:.1f} s")
    parts: dict[str, list[float]] = {"snapshot": [], "plan": [], "waiting": []}
    build, plan = services_cycle.build_snapshot, services_cycle.decide
    record = services_cycle._record_waiting

    def timed_build(**kw: object) -> object:
        t = time.perf_counter()
        result = build(**kw)  # type: ignore[arg-type]
        parts["snapshot"].append(time.perf_counter() - t)
        return result

    def timed_plan(snapshot: object) -> object:
        t = time.perf_counter()
        result = plan(snapshot)  # type: ignore[arg-type]
        parts["plan"].append(time.perf_counter() - t)
        return result

    def timed_record(result: object) -> int:
        t = time.perf_counter()
        n = record(result)  # type: ignore[arg-type]
        parts["waiting"].append(time.perf_counter() - t)
        return n

    services_cycle.build_snapshot = timed_build  # type: ignore[assignment]
    services_cycle.decide = timed_plan  # type: ignore[assignment]
    services_cycle._record_waiting = timed_record  # type: ignore[assignment]
    try:
        _timed(services_cycle.run_cycle, now)  # warm-up
        parts = {"snapshot": [], "plan": [], "waiting": []}
        total = [_timed(services_cycle.run_cycle, now) for _ in range(REPEATS)]
    finally:
        services_cycle.build_snapshot, services_cycle.decide = build, plan
        services_cycle._record_waiting = record
        if not keep:
            with transaction.atomic():
                Job.objects.all().delete()
                ReservationSlot.objects.all().delete()
                Reservation.objects.all().delete()
                Gpu.objects.all().delete()
                Node.objects.all().delete()
                TeamQuota.objects.all().delete()
                Membership.objects.all().delete()
                Team.objects.all().delete()
                get_user_model().objects.all().delete()

    def p50(xs: list[float]) -> float:
        return statistics.median(xs) * 1000

    snap_ms, plan_ms, total_ms = p50(parts["snapshot"]), p50(parts["plan"]), p50(total)
    wait_ms = p50(parts["waiting"])
    print(
        f"scheduler_production {QUEUED:,} queued, {NODES}x{GPUS} GPUs, {BOOKINGS:,} bookings, "
        f"PostgreSQL: run_cycle p50 {total_ms:.0f} ms = snapshot {snap_ms:.0f} ms + plan "
        f"{plan_ms:.0f} ms + waiting rows {wait_ms:.0f} ms + other writes "
        f"{total_ms - snap_ms - plan_ms - wait_ms:.0f} ms ({REPEATS} cycles, each rolled back)"
    )
