"""GPUs being freed by a preemption are kept for the job they were freed for (issue 17).

Between two cycles the fair-share order moves; without knowing whose victims are stopping, a
job ranked higher in the next cycle planned onto the GPUs being freed and the preemptor,
left without them, preempted again. ``Allocation.preempted_for`` names the preemptor: while
it waits, no job ranked above it plans onto those GPUs; once it is gone or admitted, the
reservation lapses.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from scheduler.core import (
    Allocation,
    CycleResult,
    PreemptReason,
    Reason,
    Snapshot,
    TeamQuota,
    UsageRecord,
    plan_cycle,
)
from scheduler.sim.synthetic import synthetic_snapshot
from tests.scheduler.core.builders import H, make_alloc, make_job, make_node, snapshot

T0 = 10 * H
GRACE = 60.0
LONG = 100 * H
QUOTAS = [TeamQuota("cv", guaranteed_gpus=8), TeamQuota("nlp", guaranteed_gpus=0)]
# "nlp" has used nothing, "cv" a lot: from the second cycle on, nlp's job ranks first.
USAGE = [UsageRecord("cv", "carol", 1e7, T0)]


def _borrowed(job_id: str, node: str, started: float):
    return (
        make_alloc(job_id).team("ops").user("olga").on(node, *range(8)).started(started)
    ).runtime(LONG)


def _second_cycle(preempted_for: str | None, queue_a: bool = True) -> Snapshot:
    """Cycle 2, 5 s after "a" (team cv, reclaiming) preempted "v" on n1: "v" is still
    stopping; "b" (nlp, no right to preempt) now ranks above "a"; "w" still runs on n2."""
    queue = [make_job("b").team("nlp").user("nina").gpus(8).submitted(T0 + 1)]
    if queue_a:
        queue.append(make_job("a").team("cv").user("carol").gpus(8).submitted(T0 - 60))
    return snapshot(
        now=T0 + 5,
        nodes=[make_node("n1"), make_node("n2")],
        queue=queue,
        allocations=[
            _borrowed("v", "n1", T0 - H).borrowed().terminating(T0 + GRACE, preempted_for),
            _borrowed("w", "n2", 0.0).borrowed(),
        ],
        usage=USAGE,
        quotas=QUOTAS,
    )


def test_first_cycle_preempts_the_youngest_borrower_for_a():
    result = plan_cycle(
        snapshot(
            now=T0,
            nodes=[make_node("n1"), make_node("n2")],
            queue=[make_job("a").team("cv").user("carol").gpus(8).submitted(T0 - 60)],
            allocations=[
                _borrowed("v", "n1", T0 - H).borrowed(),
                _borrowed("w", "n2", 0.0).borrowed(),
            ],
            usage=USAGE,
            quotas=QUOTAS,
        )
    )
    assert [(p.job_id, p.by_job, p.reason) for p in result.preempted] == [
        ("v", "a", PreemptReason.RECLAIM)
    ]


def test_without_preempted_for_the_preemptor_preempts_again():
    """The bug, as the core saw it: nothing says v's GPUs are a's, b plans onto them, a
    preempts w too."""
    result = plan_cycle(_second_cycle(preempted_for=None))
    waiting = result.waiting_by_id()
    assert waiting["b"].planned_node == "n1"
    assert [(p.job_id, p.by_job) for p in result.preempted] == [("w", "a")]


def test_gpus_being_freed_stay_with_their_preemptor():
    result = plan_cycle(_second_cycle(preempted_for="a"))
    assert result.preempted == ()
    assert result.admitted == ()
    waiting = result.waiting_by_id()
    assert waiting["a"].reason is Reason.PREEMPTING
    assert waiting["a"].planned_node == "n1"
    assert waiting["a"].eta == T0 + GRACE
    # b ranks first but plans around a's run: not onto the GPUs being freed for a.
    assert [w.job_id for w in result.waiting] == ["b", "a"]
    assert waiting["b"].eta == T0 + GRACE + H


def test_reservation_lapses_when_the_preemptor_is_no_longer_queued():
    result = plan_cycle(_second_cycle(preempted_for="a", queue_a=False))
    waiting = result.waiting_by_id()
    assert waiting["b"].planned_node == "n1"
    assert waiting["b"].eta == T0 + GRACE
    assert result.preempted == ()


def test_reservation_lapses_when_the_preemptor_starts_elsewhere():
    """a ranks first this time and a node came free: it starts there at once, and b, ranked
    after it, may then plan onto the GPUs that were being freed for a."""
    snap = _second_cycle(preempted_for="a")
    snap = replace(
        snap,
        nodes=(*snap.nodes, make_node("n3").build()),
        usage=(UsageRecord("nlp", "nina", 1e8, T0),),
    )
    result = plan_cycle(snap)
    assert [(a.job_id, a.node) for a in result.admitted] == [("a", "n3")]
    waiting = result.waiting_by_id()
    assert waiting["b"].planned_node == "n1"
    assert result.preempted == ()


def test_at_the_end_of_the_grace_the_freed_gpus_go_to_their_preemptor():
    """The cycle in which the victim's grace ends sees its GPUs free, and still keeps them
    for "a": "b", ranked first, does not start on them."""
    snap = replace(_second_cycle(preempted_for="a"), now=T0 + GRACE + 1)
    result = plan_cycle(snap)
    assert [(a.job_id, a.node) for a in result.admitted] == [("a", "n1")]
    assert result.preempted == ()
    assert result.waiting_by_id()["b"].planned_node == "n1"  # after a's run


def test_a_higher_priority_job_still_preempts_for_itself():
    """The reservation only keeps plans off the GPUs being freed: b, of a higher priority,
    may still preempt borrowed work elsewhere (for itself, a new start)."""
    snap = _second_cycle(preempted_for="a")
    queue = (replace(snap.queue[0], priority=100), snap.queue[1])
    result = plan_cycle(replace(snap, queue=queue))
    assert [(p.job_id, p.by_job) for p in result.preempted] == [("w", "b")]
    assert result.waiting_by_id()["a"].planned_node == "n1"


def _apply(snap: Snapshot, result: CycleResult, now: float) -> Snapshot:
    """What the services layer does between two cycles, ``now`` being the next cycle's."""
    queue = {j.id: j for j in snap.queue}
    running = {a.job_id: a for a in snap.allocations}
    for adm in result.admitted:
        job = queue.pop(adm.job_id)
        running[job.id] = Allocation(
            job.id, job.team, job.user, adm.node, adm.gpu_indices, snap.now,
            job.max_runtime_s, job.priority, job.preemptible, adm.borrowed, job.cpu_milli,
            job.memory_mib, job.sweep_id, placements=adm.placements,
        )  # fmt: skip
    for p in result.preempted:
        running[p.job_id] = replace(
            running[p.job_id], terminating_until=snap.now + p.grace_s, preempted_for=p.by_job
        )
    kept = tuple(
        a
        for a in running.values()
        if (a.terminating_until is None or a.terminating_until > now)
        and a.started_at + a.max_runtime_s > now
    )
    return replace(snap, now=now, queue=tuple(queue.values()), allocations=kept)


@pytest.mark.parametrize("seed", [1, 2])
def test_four_cycles_never_preempt_twice_for_a_job_whose_victims_are_stopping(seed):
    """Four cycles 5 s apart on a synthetic cluster (2,000 queued, 50 x 8): without
    ``preempted_for`` (the core ignoring it), cycles 2-4 preempted for jobs whose earlier
    victims were still terminating, 1 victim with seed 1 (cycle 3) and 2 with seed 2
    (cycle 2); now none."""
    snap = synthetic_snapshot(queued=2000, nodes=50, gpus_per_node=8, reservations=100, seed=seed)
    again = []
    for cycle in range(4):
        result = plan_cycle(snap)
        stopping_for = {a.preempted_for for a in snap.allocations if a.terminating_until}
        again.append(sum(1 for p in result.preempted if p.by_job in stopping_for))
        if cycle == 0:
            assert result.preempted  # the snapshot does exercise preemption
        snap = _apply(snap, result, snap.now + 5)
    assert again == [0, 0, 0, 0]
