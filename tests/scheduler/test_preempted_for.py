"""Through the production cycle: a preemptor keeps the GPUs its victims are freeing
(``Job.preempted_for`` -> ``Allocation.preempted_for``), even when a job of another team
ranks above it in the next cycle (issue 17)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.accounts.models import Team
from scheduler import states
from scheduler.models import Job, TeamQuota
from scheduler.services.cycle import run_cycle
from scheduler.services.snapshot import build_snapshot
from tests.conftest import make_persona
from tests.scheduler.conftest import create_job, make_node

pytestmark = pytest.mark.django_db

NONE_BUSY: frozenset[tuple[str, int]] = frozenset()


def _job(persona, team, status=states.QUEUED, **fields) -> Job:
    fields.setdefault("gpus", 2)
    fields.setdefault("submitted_at", timezone.now() - timedelta(hours=50))
    return create_job(persona, team, status, **fields)


def test_two_cycles_keep_the_freed_gpus_for_their_preemptor(alice, charlie, vision, nlp):
    now = timezone.now()
    tesla1, tesla2 = make_node("tesla-01"), make_node("tesla-02")
    ops, olga = Team.objects.create(slug="ops", name="Ops"), make_persona("olga")
    TeamQuota.objects.create(team=vision, guaranteed_gpus=2)
    # Vision used its GPUs for two days last week: once it has a victim stopping, nlp's
    # new job ranks above vision's by fair share.
    _job(
        alice,
        vision,
        states.SUCCEEDED,
        started_at=now - timedelta(days=3),
        finished_at=now - timedelta(days=1),
    )

    def borrower(node, started):
        return _job(
            olga, ops, states.RUNNING, node=node, gpu_indices=[0, 1], borrowed=True,
            max_runtime_s=48 * 3600, started_at=started, admitted_at=started,
        )  # fmt: skip

    young, old = (
        borrower(tesla1, now - timedelta(hours=1)),
        borrower(tesla2, now - timedelta(hours=10)),
    )
    lender = _job(alice, vision, submitted_at=now - timedelta(seconds=60))

    report = run_cycle(None, now=now, foreign_busy=NONE_BUSY)
    assert report.preempted == [young.pk]
    young.refresh_from_db()
    assert young.status == states.PREEMPTED
    assert young.preempted_for_id == lender.pk
    # Its preemptor is read too, so the victim is told whose work took the GPUs.
    assert "a 2-GPU job of team vision" in young.message
    grace_end = young.terminating_until
    assert grace_end is not None

    # The snapshot tells the core whom the stopping job's GPUs are for.
    later = now + timedelta(seconds=5)
    snapshot = build_snapshot(now=later, foreign_busy=NONE_BUSY)
    stopping = {a.job_id: a for a in snapshot.allocations}[str(young.pk)]
    assert stopping.preempted_for == str(lender.pk)

    newcomer = _job(charlie, nlp, submitted_at=now + timedelta(seconds=1))
    report = run_cycle(None, now=later, foreign_busy=NONE_BUSY)
    assert report.preempted == []  # the lender does not preempt a second borrower
    old.refresh_from_db()
    assert old.status == states.RUNNING
    lender.refresh_from_db()
    newcomer.refresh_from_db()
    assert (newcomer.queue_position, lender.queue_position) == (1, 2)
    assert lender.reason == "preempting"
    assert lender.eta == grace_end
    # The newcomer plans after the lender's run on tesla-01, not onto its freed GPUs.
    assert newcomer.eta == grace_end + timedelta(hours=1)

    # The grace over: the victim is requeued (its preemptor forgotten), the lender starts.
    report = run_cycle(None, now=grace_end + timedelta(seconds=1), foreign_busy=NONE_BUSY)
    assert report.admitted == [lender.pk]
    young.refresh_from_db()
    assert (young.status, young.preempted_for_id) == (states.QUEUED, None)
    assert Job.objects.get(pk=lender.pk).node == tesla1


def test_a_job_admitted_but_not_yet_submitted_can_be_preempted(alice, vision, nlp):
    """A job an earlier cycle admitted waits in ``admitted`` until it reaches the cluster
    (the submission was deferred: the API server did not answer). When a later cycle
    preempts it, it has no pod to stop (and ``admitted`` -> ``preempted`` is no edge): it
    goes back to the queue as a new attempt, and the cycle does not fail. It used to raise
    ``InvalidTransition`` on every cycle until reconcile submitted the job."""
    now = timezone.now()
    node = make_node("tesla-01")
    olga = make_persona("olga")
    ops = Team.objects.create(slug="ops", name="Ops")
    TeamQuota.objects.create(team=vision, guaranteed_gpus=2)
    waiting = _job(
        olga, ops, states.ADMITTED, node=node, gpu_indices=[0, 1], borrowed=True,
        admitted_at=now - timedelta(minutes=2), max_runtime_s=48 * 3600,
    )  # fmt: skip
    lender = _job(alice, vision, submitted_at=now - timedelta(seconds=60))

    report = run_cycle(None, now=now, foreign_busy=NONE_BUSY)
    waiting.refresh_from_db()
    assert waiting.status == states.QUEUED
    assert waiting.attempt == 2 and waiting.node is None and waiting.gpu_indices == []
    assert waiting.reason == "preempted_reclaim"
    assert "a 2-GPU job of team vision" in waiting.message
    assert report.requeued == [waiting.pk] and report.preempted == []
    assert waiting.events.filter(from_status=states.ADMITTED, to_status=states.QUEUED).exists()
    # Its GPUs are free at once: the lender is admitted by the next cycle.
    run_cycle(None, now=now + timedelta(seconds=5), foreign_busy=NONE_BUSY)
    lender.refresh_from_db()
    assert lender.status == states.ADMITTED and lender.node == node
