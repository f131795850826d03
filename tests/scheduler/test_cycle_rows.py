"""The production cycle's database side (issue 17): the snapshot read as plain rows is
the one the model instances gave, and each waiting job's reason, position and ETA is
written only when it changed."""

from __future__ import annotations

import gc
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler import states
from scheduler.core import snapshot as snap
from scheduler.models import (
    LIVE_STATUSES,
    Job,
    JobEvent,
    Node,
    PriorityClass,
    QueueOrder,
    Reservation,
    ReservationSlot,
    Sweep,
    TeamPolicy,
    TeamQuota,
)
from scheduler.services import cycle
from scheduler.services import snapshot as snapshot_loader
from scheduler.services.cycle import run_cycle
from scheduler.services.inventory import outside_gpu_indices
from scheduler.services.jobs import InvalidTransition, transition_jobs
from scheduler.services.snapshot import build_snapshot, load_snapshot
from tests.scheduler.conftest import create_job, make_node

pytestmark = pytest.mark.django_db


_job = create_job


@pytest.fixture
def busy(alice, bob, charlie, vision, nlp, nodes):
    """Running, admitted, preempted (in and past grace), finished and queued jobs of two
    teams, a sweep, priority classes, bookings shared and not, quotas, a cap, a budget."""
    now = timezone.now()
    PriorityClass.objects.update_or_create(name="high", defaults={"value": 100})
    TeamQuota.objects.create(team=vision, guaranteed_gpus=4, user_gpu_cap=3)
    TeamQuota.objects.create(team=nlp, guaranteed_gpus=2, borrowing_limit=2, share_weight=2.0)
    TeamPolicy.objects.update_or_create(team=nlp, defaults={"weekly_gpu_hours": 500})
    tesla1, a100 = nodes["tesla-01"], nodes["a100-01"]
    _job(
        alice,
        vision,
        states.RUNNING,
        node=tesla1,
        gpu_indices=[0],
        gpus=1,
        started_at=now - timedelta(minutes=30),
        admitted_at=now - timedelta(minutes=31),
    )
    _job(
        charlie,
        nlp,
        states.ADMITTED,
        node=a100,
        gpu_indices=[0, 1],
        gpus=2,
        borrowed=True,
        admitted_at=now - timedelta(seconds=5),
        priority_class="high",
        cpu_millis=4000,
    )
    _job(
        bob,
        vision,
        states.PREEMPTED,
        node=a100,
        gpu_indices=[2],
        gpus=1,
        started_at=now - timedelta(hours=1),
        terminating_until=now + timedelta(seconds=20),
    )
    _job(
        bob,
        vision,
        states.PREEMPTED,
        node=a100,
        gpu_indices=[3],
        gpus=1,
        started_at=now - timedelta(hours=1),
        terminating_until=now - timedelta(seconds=1),
    )
    for hours in (1, 30, 24 * 40):
        _job(
            alice,
            vision,
            states.SUCCEEDED,
            gpus=2,
            started_at=now - timedelta(hours=hours),
            finished_at=now - timedelta(hours=hours) + timedelta(minutes=20),
        )
    sweep = Sweep.objects.create(
        name="lr",
        owner=alice.user,
        team=vision,
        template={},
        parameters={},
        parallelism=2,
        created_at=now,
    )
    unbounded = Sweep.objects.create(
        name="wd", owner=bob.user, team=vision, template={}, parameters={}, created_at=now
    )
    for i in range(3):
        _job(alice, vision, sweep=sweep, gpus=1, submitted_at=now - timedelta(minutes=i))
    _job(bob, vision, sweep=unbounded, gpus=1)
    _job(bob, vision, gpus=2, gpu_models=["NVIDIA-A100-SXM4-80GB"], attempt=3)
    _job(charlie, nlp, gpus=4, priority_class="high", preemptible=False, max_runtime_s=600)
    _job(charlie, nlp, gpus=8, memory_mb=1024)
    for node, indices, shared, hours in (
        (nodes["tesla-02"], [1, 0], False, 2),
        (tesla1, [1], True, 1),
    ):
        booking = Reservation.objects.create(
            holder=bob.user, team=vision, node=node, start=now + timedelta(hours=hours),
            end=now + timedelta(hours=hours + 2), created_at=now, shared_with_team=shared,
        )  # fmt: skip
        ReservationSlot.objects.bulk_create(
            ReservationSlot(reservation=booking, gpu=node.gpus.get(index=i),
                            start=booking.start, end=booking.end)
            for i in indices
        )  # fmt: skip
    return now


@pytest.fixture
def odd_nodes(busy, alice, vision):
    """`busy` plus a node that is gone and one whose GPUs foreign pods partly hold."""
    now = busy
    make_node("gone-01", gone_at=now)
    # Foreign pods hold a GPU, the device plugin offers 5 of 6, one GPU is no longer there.
    shared = make_node("shared-01", 6, foreign_gpus=1, foreign_cpu_millis=2000,
                       foreign_memory_mb=1024)  # fmt: skip
    Node.objects.filter(pk=shared.pk).update(gpu_allocatable=5)
    shared.gpus.filter(index=2).update(present=False)
    shared.gpus.filter(index=3).update(healthy=False, uuid="GPU-3")
    _job(alice, vision, states.RUNNING, node=shared, gpu_indices=[5], gpus=1,
         started_at=now - timedelta(minutes=3))  # fmt: skip
    return now


# --- what build_snapshot read from model instances before it read plain rows -------------


def _node(node, held, foreign_busy) -> snap.Node:
    gpus = [g for g in node.gpus.all() if g.present]
    telemetry = frozenset(g.index for g in gpus if (node.name, g.index) in foreign_busy)
    outside = outside_gpu_indices(node, [g.index for g in gpus], held, telemetry)
    return snap.Node(
        name=node.name,
        gpu_model=node.gpu_model,
        gpus=tuple(
            snap.Gpu(index=g.index, uuid=g.uuid, healthy=g.healthy,
                     foreign_busy=g.index in telemetry or g.index in outside)
            for g in gpus
        ),
        cpu_milli=max(0, node.cpu_allocatable_millis - node.foreign_cpu_millis),
        memory_mib=max(0, node.memory_allocatable_mb - node.foreign_memory_mb),
        cordoned=node.cordoned,
        ready=node.ready,
    )  # fmt: skip


def _reference(now, foreign_busy=frozenset()) -> snap.Snapshot:
    from django.db.models import Q

    priorities = dict(PriorityClass.objects.values_list("name", "value"))
    held = list(
        Job.objects.filter(
            Q(status__in=states.ON_CLUSTER) | Q(status=states.PREEMPTED, terminating_until__gt=now),
            node__isnull=False,
        ).select_related("owner", "team", "node", "sweep")
    )
    held_indices: dict[int, set[int]] = {}
    for job in held:
        held_indices.setdefault(job.node_id, set()).update(job.gpu_indices or ())
    nodes = tuple(
        _node(n, held_indices.get(n.pk, set()), foreign_busy)
        for n in Node.objects.filter(gone_at__isnull=True).prefetch_related("gpus")
    )
    allocations = tuple(
        snap.Allocation(
            job_id=str(j.pk), team=j.team.slug, user=j.owner.get_username(),
            node=j.node.name if j.node else "", gpu_indices=tuple(j.gpu_indices or ()),
            started_at=j.held_since(j.submitted_at).timestamp(),
            max_runtime_s=float(j.max_runtime_s), priority=priorities.get(j.priority_class, 0),
            preemptible=j.preemptible, borrowed=j.borrowed, cpu_milli=j.cpu_millis,
            memory_mib=j.memory_mb, sweep_id=str(j.sweep_id) if j.sweep_id else None,
            terminating_until=j.terminating_until.timestamp() if j.terminating_until else None,
        )
        for j in held
    )  # fmt: skip
    queue = tuple(
        snap.QueuedJob(
            id=str(j.pk), team=j.team.slug, user=j.owner.get_username(), gpus=j.gpus,
            max_runtime_s=float(j.max_runtime_s), submitted_at=j.submitted_at.timestamp(),
            models=frozenset(j.gpu_models or ()), cpu_milli=j.cpu_millis,
            memory_mib=j.memory_mb, priority=priorities.get(j.priority_class, 0),
            preemptible=j.preemptible, attempt=j.attempt - 1,
            sweep_id=str(j.sweep_id) if j.sweep_id else None,
            sweep_parallelism=j.sweep.parallelism if j.sweep else None,
        )
        for j in Job.objects.filter(status=states.QUEUED).select_related("owner", "team", "sweep")
    )  # fmt: skip
    bookings = tuple(
        snap.Booking(
            id=str(r.pk), node=r.node.name,
            gpu_indices=tuple(sorted(s.gpu.index for s in r.slots.all())),
            start=r.start.timestamp(), end=r.end.timestamp(), user=r.holder.get_username(),
            team=r.team.slug if r.shared_with_team else None,
        )
        for r in Reservation.objects.filter(status__in=LIVE_STATUSES, end__gt=now)
        .select_related("node", "holder", "team")
        .prefetch_related("slots__gpu")
    )  # fmt: skip
    done = Job.objects.filter(
        finished_at__gte=now - snapshot_loader.USAGE_HORIZON, started_at__isnull=False, gpus__gt=0
    ).select_related("owner", "team")
    usage = tuple(
        snap.UsageRecord(
            team=j.team.slug, user=j.owner.get_username(),
            gpu_seconds=j.gpus * (j.finished_at - j.started_at).total_seconds(),
            at=j.finished_at.timestamp(),
        )
        for j in done
    )  # fmt: skip
    return snap.Snapshot(
        now=now.timestamp(), nodes=nodes, queue=queue, allocations=allocations,
        bookings=bookings, usage=usage, quotas=snapshot_loader._quotas(now),
        user_gpu_caps=snapshot_loader._user_caps(), config=snapshot_loader.production_config(),
    )  # fmt: skip


def test_the_snapshot_from_plain_rows_is_the_one_model_instances_gave(odd_nodes):
    foreign = frozenset({("tesla-02", 1), ("shared-01", 0)})
    built = build_snapshot(now=odd_nodes, foreign_busy=foreign)
    reference = _reference(odd_nodes, foreign)
    # The queue comes in no particular order (the core ranks it; see tests/scheduler/core's
    # test_the_queue_order_given_does_not_matter).
    by_id = sorted(reference.queue, key=lambda j: int(j.id))
    assert sorted(built.queue, key=lambda j: int(j.id)) == by_id
    assert replace(built, queue=reference.queue) == reference
    # The fixture reaches every branch it is meant to.
    assert len(built.queue) == 7 and len(built.allocations) == 4 and len(built.bookings) == 2
    assert [n.name for n in built.nodes] == ["a100-01", "shared-01", "tesla-01", "tesla-02"]
    shared = built.nodes[1]
    assert [g.index for g in shared.gpus if g.foreign_busy] == [0, 4]
    assert [g.index for g in shared.gpus] == [0, 1, 3, 4, 5]
    assert {j.sweep_parallelism for j in built.queue} == {2, None}
    assert {b.team for b in built.bookings} == {"vision", None}
    assert len(built.usage) == 2


# --- the waiting rows --------------------------------------------------------------------


def _versions() -> dict[int, object]:
    """Each queued row's physical version: PostgreSQL gives a row a new `ctid` whenever it
    is updated, even to the same values; on SQLite, the rows changed so far."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, ctid::text FROM scheduler_job WHERE status = %s", [states.QUEUED]
            )
            return dict(cursor.fetchall())
    return {0: connection.connection.total_changes}


def _rewritten(before: dict[int, object]) -> set[int] | int:
    after = _versions()
    if connection.vendor == "postgresql":
        return {pk for pk, version in after.items() if before.get(pk) != version}
    return after[0] - before[0]  # type: ignore[operator]


def _waiting() -> dict[int, tuple]:
    """Each queued job's waiting fields as its row holds them (its place in line is not on
    the row: ``_positions``)."""
    return {
        pk: rest
        for pk, *rest in Job.objects.filter(status=states.QUEUED).values_list(
            "pk", "reason", "message", "eta"
        )
    }


def _positions() -> dict[int, int]:
    return {pk: place.position for pk, place in QueueOrder.places().items()}


def _cycle(now):
    """One cycle: its report, the waiting rows whose values changed, the rows the database
    rewrote (ids on PostgreSQL, a count on SQLite) and the UPDATE statements sent."""
    values, versions = _waiting(), _versions()
    with CaptureQueriesContext(connection) as queries:
        report = run_cycle(None, now=now, foreign_busy=frozenset())
    after = _waiting()
    changed = {pk for pk, row in after.items() if values.get(pk) != row}
    # The tables each UPDATE wrote, in order
    updates = [q["sql"].split('"')[1] for q in queries if q["sql"].startswith("UPDATE")]
    return report, changed, _rewritten(versions), updates


def _written(changed: set[int]) -> set[int] | int:
    """What ``_rewritten`` gives when the job rows ``changed`` and the line were written."""
    return changed if connection.vendor == "postgresql" else len(changed) + 1


def test_only_waiting_rows_that_changed_are_written(busy, alice, vision):
    # The first cycles admit, requeue the job whose grace period ended, admit it, and
    # move the others: each writes exactly the waiting rows whose values changed.
    first, changed, rewritten, _ = _cycle(busy)
    assert first.admitted and first.requeued and first.waiting == 4
    waiting = set(_positions())
    assert len(waiting) == 4 and waiting <= changed  # the first cycle writes them all
    if connection.vendor == "postgresql":
        assert rewritten == changed
    second, changed, rewritten, _ = _cycle(busy)
    assert second.admitted == first.requeued and changed
    if connection.vendor == "postgresql":
        assert rewritten == changed
    _cycle(busy)  # the core counts the admission differently once it is an allocation

    # A plain cycle with nothing new: no waiting row is rewritten, nor the line: no UPDATE
    # at all.
    recorded = _waiting()
    plain, changed, rewritten, updates = _cycle(busy)
    assert (plain.admitted, plain.preempted, plain.requeued, plain.waiting) == ([], [], [], 4)
    assert changed == set() and rewritten in (set(), 0) and updates == []
    assert _waiting() == recorded

    # A job behind everyone (submitted last): only its row is written, in one UPDATE.
    behind = _job(alice, vision, gpus=8, submitted_at=busy + timedelta(seconds=1))
    later, changed, rewritten, updates = _cycle(busy)
    assert (later.admitted, later.waiting) == ([], 5)
    assert changed == {behind.pk} and rewritten == _written(changed)
    assert _positions()[behind.pk] == 5
    if connection.vendor == "postgresql":  # the new line, the job rows in one statement
        assert updates == ["scheduler_queueorder", "scheduler_job"]

    # A job ahead of everyone (high priority, submitted first) moves all the others back a
    # place: the line changes, and only the rows whose reason or message changed with it
    # are written (the one that was first now waits behind it), not every row below.
    before, reasons = _positions(), {pk: row[0] for pk, row in _waiting().items()}
    ahead = _job(alice, vision, gpus=8, priority_class="high", preemptible=False,
                 submitted_at=busy - timedelta(days=1))  # fmt: skip
    last, changed, rewritten, updates = _cycle(busy)
    assert (last.admitted, last.waiting) == ([], 6)
    after = _positions()
    assert after[ahead.pk] == 1 and {pk: after[pk] - 1 for pk in before} == before
    moved = {pk for pk, row in _waiting().items() if reasons.get(pk) != row[0]}
    assert changed == moved and ahead.pk in moved and len(moved) < 6
    assert rewritten == _written(changed)
    if connection.vendor == "postgresql":  # the new line, the job rows in one statement
        assert updates == ["scheduler_queueorder", "scheduler_job"]


def test_a_job_cancelled_meanwhile_keeps_its_own_reason(busy):
    snapshot, stored = load_snapshot(now=busy, foreign_busy=frozenset())
    result = cycle.decide(snapshot)
    gone = int(result.waiting[0].job_id)
    Job.objects.filter(pk=gone).update(status=states.CANCELLED, reason="cancelled")
    cycle._record_waiting(result, stored, busy)
    cancelled = Job.objects.get(pk=gone)
    assert (cancelled.reason, cancelled.queue_position) == ("cancelled", None)
    # The others got their reason and position.
    others = {int(w.job_id): (w.reason, w.position) for w in result.waiting[1:]}
    assert {
        job.pk: (job.reason, job.queue_position) for job in Job.objects.filter(pk__in=others)
    } == others


def test_waiting_rows_are_compared_with_what_the_snapshot_read(busy):
    """The cycle writes a waiting row when it differs from the row the snapshot read: a
    row the last cycle wrote and nobody changed since is not written again."""
    for _ in range(3):  # admissions, a requeue: then the queue settles (see above)
        run_cycle(None, now=busy, foreign_busy=frozenset())
    snapshot, stored = load_snapshot(now=busy, foreign_busy=frozenset())
    result = cycle.decide(snapshot)
    assert stored and cycle._record_waiting(result, stored, busy) == 0
    # What the snapshot read is what is stored, ETA as epoch seconds.
    for pk, (reason, message, eta) in stored.items():
        job = Job.objects.get(pk=pk)
        assert (reason, message) == (job.reason, job.message)
        assert eta == (job.eta.timestamp() if job.eta else None)
    # One stored row differs: exactly that one is written back.
    first = result.waiting[0]
    stale = dict(stored)
    stale[int(first.job_id)] = ("capacity", "something else", None)
    assert cycle._record_waiting(result, stale, busy) == 1


# --- admissions and preemptions together -------------------------------------------------


def test_transition_jobs_writes_each_jobs_columns_and_event(busy, nodes):
    queued = list(Job.objects.filter(status=states.QUEUED).order_by("pk")[:2])
    moves = [
        (job, {"reason": "admitted", "node": nodes["tesla-02"], "gpu_indices": [i],
               "borrowed": i == 1, "admitted_at": busy, "eta": None})
        for i, job in enumerate(queued)
    ]  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        transition_jobs(states.ADMITTED, moves, now=busy)
    if connection.vendor == "postgresql":
        assert len([q for q in queries if q["sql"].startswith(("UPDATE", "INSERT"))]) == 2
    for i, job in enumerate(queued):
        row = Job.objects.get(pk=job.pk)
        assert (row.status, row.reason, row.message, row.node, row.gpu_indices, row.borrowed) == (
            states.ADMITTED, "admitted", "", nodes["tesla-02"], [i], i == 1,
        )  # fmt: skip
        assert row.admitted_at == busy and job.status == states.ADMITTED
        event = row.events.get()
        assert (event.from_status, event.to_status, event.reason, event.attempt) == (
            states.QUEUED, states.ADMITTED, "admitted", 1,
        )  # fmt: skip


def test_transition_jobs_writes_nothing_when_one_changed_underneath(busy):
    first, second = Job.objects.filter(status=states.QUEUED).order_by("pk")[:2]
    Job.objects.filter(pk=second.pk).update(status=states.CANCELLED)  # `second` is stale
    moves = [(job, {"reason": "admitted", "admitted_at": busy}) for job in (first, second)]
    with pytest.raises(InvalidTransition), transaction.atomic():
        transition_jobs(states.ADMITTED, moves, now=busy)
    assert Job.objects.get(pk=first.pk).status == states.QUEUED
    assert not JobEvent.objects.filter(job__in=[first, second]).exists()


def test_the_cycle_leaves_the_garbage_collector_as_it_found_it(busy):
    assert gc.isenabled()
    run_cycle(None, now=busy, foreign_busy=frozenset())
    assert gc.isenabled()
    gc.disable()
    try:
        run_cycle(None, now=busy, foreign_busy=frozenset())
        assert not gc.isenabled()
    finally:
        gc.enable()
