"""The queued jobs' rows kept between cycles (``services.snapshot.QueueRows``, issue 17):
a cycle reads whole only the rows that changed since the last one, and never plans on a
stale one. Every change a queued job can see must show in the next snapshot, including
changes made in the same transaction (where ``xmin`` alone would not change) and changes
to the rows a job only refers to (its team's name, its owner's, its sweep's cap)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.utils import timezone

from scheduler import states
from scheduler.models import Job, PriorityClass, Sweep
from scheduler.services import cycle
from scheduler.services import snapshot as snapshot_loader
from scheduler.services.cycle import run_cycle
from scheduler.services.snapshot import QUEUE_ROWS, build_snapshot
from tests.scheduler.conftest import create_job

pytestmark = pytest.mark.django_db


def _fetched(changed: int) -> bool:
    """True if the last read read whole what it should: on PostgreSQL only the ``changed``
    rows; elsewhere (no row versions) every queued one."""
    if connection.vendor == "postgresql":
        return QUEUE_ROWS.fetched == changed
    return QUEUE_ROWS.fetched == Job.objects.filter(status=states.QUEUED).count()


def _queued(persona, team, **fields) -> Job:
    return create_job(persona, team, **fields)


def _queue() -> dict[str, object]:
    return {j.id: j for j in build_snapshot(now=timezone.now()).queue}


@pytest.fixture
def three(alice, bob, vision, nlp):
    QUEUE_ROWS.clear()
    jobs = [_queued(alice, vision, gpus=1), _queued(bob, vision, gpus=2), _queued(bob, nlp)]
    assert len(_queue()) == 3 and _fetched(3)
    return jobs


def test_unchanged_rows_are_not_read_again(three):
    first = _queue()
    assert _fetched(0)
    assert _queue() == first and _fetched(0)


def test_a_change_in_the_same_transaction_is_seen(three):
    """Everything here runs in one transaction (the test's): the row's ``xmin`` stays the
    same across UPDATEs, its place (``ctid``) does not."""
    job = three[1]
    Job.objects.filter(pk=job.pk).update(gpus=4, priority_class="high", preemptible=False)
    PriorityClass.objects.update_or_create(name="high", defaults={"value": 100})
    seen = _queue()[str(job.pk)]
    assert _fetched(1)
    assert (seen.gpus, seen.priority, seen.preemptible) == (4, 100, False)
    # A second change, and one undone by a rolled-back savepoint.
    Job.objects.filter(pk=job.pk).update(gpu_models=["H100"])
    try:
        with transaction.atomic():
            Job.objects.filter(pk=job.pk).update(gpus=8)
            assert _queue()[str(job.pk)].gpus == 8
            raise RuntimeError
    except RuntimeError:
        pass
    seen = _queue()[str(job.pk)]
    assert (seen.gpus, seen.models) == (4, frozenset({"H100"}))


def test_jobs_leave_and_join_the_queue(three, alice, vision):
    gone, _, _ = three
    Job.objects.filter(pk=gone.pk).update(status=states.CANCELLED)
    new = _queued(alice, vision, gpus=3)
    queue = _queue()
    assert set(queue) == {str(three[1].pk), str(three[2].pk), str(new.pk)}
    assert _fetched(1) and queue[str(new.pk)].gpus == 3
    assert str(gone.pk) not in QUEUE_ROWS.kept and gone.pk not in QUEUE_ROWS.kept


def test_names_and_caps_from_other_rows_are_read_each_cycle(three, alice, vision):
    sweep = Sweep.objects.create(
        name="lr", owner=alice.user, team=vision, template={}, parameters={},
        parallelism=2, created_at=timezone.now(),
    )  # fmt: skip
    job = _queued(alice, vision, sweep=sweep)
    assert _queue()[str(job.pk)].sweep_parallelism == 2
    Sweep.objects.filter(pk=sweep.pk).update(parallelism=5)
    vision.slug = "vision-2"
    vision.save()
    alice.user.username = "alice-2"
    alice.user.save()
    seen = _queue()[str(job.pk)]
    assert _fetched(0)  # the job's own row did not change
    assert (seen.sweep_parallelism, seen.team, seen.user) == (5, "vision-2", "alice-2")


def test_kept_rows_give_the_snapshot_a_fresh_read_gives(three, alice, nlp):
    _queued(alice, nlp, gpus=2, gpu_models=["A100", "H100"], cpu_millis=500, attempt=2)
    now = timezone.now()
    warm = build_snapshot(now=now)
    QUEUE_ROWS.clear()
    cold = build_snapshot(now=now)
    assert _fetched(4)
    by_id = sorted(warm.queue, key=lambda j: j.id)
    assert by_id == sorted(cold.queue, key=lambda j: j.id)
    assert snapshot_loader._queue({}) != () and len(by_id) == 4


def test_job_pages_leave_room_for_the_cycles_rewrites():
    """Migration 0018: half of each page of ``scheduler_job`` stays free, so a cycle's
    rewrite of every waiting row can stay on its page (no new index entries)."""
    if connection.vendor != "postgresql":
        return  # a storage parameter of PostgreSQL's; SQLite has none
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'scheduler_job'")
        (options,) = cursor.fetchone()
    assert "fillfactor=50" in options


def _stored_in_database() -> dict[int, tuple[object, ...]]:
    return {
        pk: (reason, message, eta.timestamp() if eta else None)
        for pk, reason, message, eta in Job.objects.filter(status=states.QUEUED).values_list(
            "pk", "reason", "message", "eta"
        )
    }


def test_a_cycles_own_waiting_writes_are_not_read_again(three):
    """The cycle keeps the row versions its UPDATE of the waiting fields made: the next
    snapshot reads none of those rows whole, and sees what is stored."""
    run_cycle(None, now=timezone.now(), foreign_busy=frozenset())
    written = _stored_in_database()
    assert all(reason for reason, _, _ in written.values())
    _, stored = snapshot_loader.load_snapshot(now=timezone.now())
    assert _fetched(0) and stored == written


def test_a_rolled_back_cycles_writes_are_read_again(alice, vision, nodes):
    QUEUE_ROWS.clear()
    for _ in range(3):  # one runs on the 4-GPU node, two wait for it (with ETAs)
        _queued(alice, vision, gpus=4)
    run_cycle(None, now=timezone.now(), foreign_busy=frozenset())
    before = _stored_in_database()
    assert len(before) == 2 and all(eta for _, _, eta in before.values())
    # A job ahead of the others changes when they may start, in a cycle then rolled back.
    _queued(alice, vision, gpus=4, priority_class="high")
    try:
        with transaction.atomic():
            run_cycle(None, now=timezone.now(), foreign_busy=frozenset())
            inside = _stored_in_database()
            raise RuntimeError
    except RuntimeError:
        pass
    after = _stored_in_database()
    # Rows the rolled-back cycle wrote, of jobs still queued (the one it preempted is not)
    written = {pk for pk, row in inside.items() if before.get(pk) != row} & after.keys()
    assert len(written) >= 2  # the new job's row and at least one it moved
    _, stored = snapshot_loader.load_snapshot(now=timezone.now())
    assert stored == after
    # Only PostgreSQL has row versions: the rows the rolled-back cycle wrote come again.
    assert _fetched(len(written))


def test_a_priority_value_change_rebuilds_the_jobs(three):
    job = three[0]
    PriorityClass.objects.update_or_create(name="normal", defaults={"value": 7})
    assert _queue()[str(job.pk)].priority == 7
    PriorityClass.objects.filter(name="normal").update(value=3)
    assert _queue()[str(job.pk)].priority == 3 and _fetched(0)


def test_a_snapshot_that_failed_while_building_leaves_no_stale_job(three, monkeypatch):
    """The rows were read (and kept at their new version) but the jobs not all built: the
    next snapshot must not plan on the jobs built from the old rows."""
    job = three[1]
    Job.objects.filter(pk=job.pk).update(gpus=6)

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    with monkeypatch.context() as patched:
        patched.setattr(snapshot_loader.snap, "queued_job", fail)
        with pytest.raises(RuntimeError):
            _queue()
    assert _queue()[str(job.pk)].gpus == 6


def test_a_job_changed_between_the_snapshot_and_the_waiting_write_is_read_again(three):
    """The cycle keeps the row versions of its own waiting writes only for rows that are
    still as its snapshot read them: a job changed in between (here: in the same
    transaction) must not be kept with the content the snapshot read."""
    job = three[1]
    snapshot, stored = snapshot_loader.load_snapshot(now=timezone.now())
    result = cycle.decide(snapshot)
    Job.objects.filter(pk=job.pk).update(gpus=4)
    cycle._record_waiting(result, stored, timezone.now())
    assert _queue()[str(job.pk)].gpus == 4


def test_the_queue_rows_come_straight_from_the_cursor():
    """No column of the queued rows needs Django's conversion per row on PostgreSQL (the
    epoch seconds are float8 already), so ``_plain_rows`` takes them from the cursor; the
    first cycle reads 10k of them."""
    query = snapshot_loader._queue_query()
    compiler = query.query.get_compiler(using=query.db)
    compiler.as_sql()
    converters = compiler.get_converters([column for column, _, _ in compiler.select])
    if connection.vendor == "postgresql":
        assert converters == {}
    else:  # SQLite gives the times as datetimes, converted by Django
        assert converters
