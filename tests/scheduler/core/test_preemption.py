"""Preemption: reclaiming borrowed GPUs, priority, victim choice, grace, no repeats."""

from __future__ import annotations

import pytest

from scheduler.core import (
    Config,
    Preempt,
    PreemptReason,
    Reason,
    TeamQuota,
    UsageRecord,
    plan_cycle,
)
from scheduler.sim.synthetic import synthetic_snapshot
from tests.scheduler.core.builders import H, make_alloc, make_job, snapshot

NOW = 10 * H
LONG = 100 * H
QUOTAS = [TeamQuota("cv", guaranteed_gpus=8), TeamQuota("ml", guaranteed_gpus=0)]


def ml(job_id: str, *gpus: int, started: float = 0.0):
    return make_alloc(job_id).team("ml").user("dave").on("n1", *gpus).started(started).runtime(LONG)


@pytest.mark.parametrize(
    ("queue", "allocations", "want_victims"),
    [
        pytest.param(
            [make_job("c").team("cv").gpus(4)],
            [ml("m1", *range(8)).borrowed()],
            {"m1": PreemptReason.RECLAIM},
            id="the lender reclaims its guaranteed GPUs from borrowed work",
        ),
        pytest.param(
            [make_job("c").team("cv").gpus(4)],
            [ml("old", 0, 1, 2, 3).borrowed(), ml("new", 4, 5, 6, 7, started=H).borrowed()],
            {"new": PreemptReason.RECLAIM},
            id="reclaim takes the most recently started (least work lost)",
        ),
        pytest.param(
            [make_job("c").team("cv").gpus(4)],
            [ml("old", 0, 1, 2, 3).borrowed(),
             ml("new", 4, 5, 6, 7, started=H).borrowed().non_preemptible()],
            {"old": PreemptReason.RECLAIM},
            id="a non-preemptible job is never a victim, even if it would lose less",
        ),
        pytest.param(
            [make_job("c").team("cv").gpus(4)],
            [ml("m1", *range(8)).borrowed().non_preemptible()],
            {},
            id="only non-preemptible work: nobody is preempted",
        ),
        pytest.param(
            [make_job("c").team("cv").gpus(12)],
            [ml("m1", *range(8)).borrowed()],
            {},
            id="a job beyond its own guarantee reclaims nothing",
        ),
        pytest.param(
            [make_job("c").team("cv").gpus(2)],
            [ml("a", 0, 1, 2, 3, started=H).borrowed(), ml("b", 4, 5, started=2 * H).borrowed(),
             ml("c6", 6, 7, started=3 * H).borrowed()],
            {"c6": PreemptReason.RECLAIM},
            id="only as many victims as the job needs",
        ),
        pytest.param(
            [make_job("hi").team("ml").user("dave").gpus(8).priority(10)],
            [ml("lo", *range(8))],
            {"lo": PreemptReason.PRIORITY},
            id="higher priority preempts lower priority work of its own team",
        ),
        pytest.param(
            [make_job("hi").team("ml").user("dave").gpus(8).priority(10)],
            [make_alloc("cvjob").team("cv").on("n1", *range(8)).runtime(LONG)],
            {},
            id="priority never preempts another team's guaranteed work",
        ),
        pytest.param(
            [make_job("hi").team("ml").user("dave").gpus(4).priority(10)],
            [make_alloc("cvb").team("cv").on("n1", 0, 1, 2, 3).runtime(LONG).borrowed(),
             ml("own", 4, 5, 6, 7, started=H)],
            {"cvb": PreemptReason.PRIORITY},
            id="borrowed work goes before guaranteed work, even if started earlier",
        ),
        pytest.param(
            [make_job("eq").team("ml").user("dave").gpus(8)],
            [ml("lo", *range(8))],
            {},
            id="equal priority: no preemption",
        ),
    ],
)  # fmt: skip
def test_victims(queue, allocations, want_victims):
    result = plan_cycle(snapshot(now=NOW, queue=queue, allocations=allocations, quotas=QUOTAS))
    assert {p.job_id: p.reason for p in result.preempted} == want_victims
    assert all(p.by_job == queue[0].build().id for p in result.preempted)
    assert not result.admitted


def test_preemptor_waits_for_the_grace_period_and_holds_the_freed_gpus():
    result = plan_cycle(
        snapshot(
            now=NOW,
            queue=[make_job("c").team("cv").gpus(8), make_job("late").team("ml").submitted(1)],
            allocations=[ml("m1", *range(8)).borrowed()],
            quotas=QUOTAS,
            config=Config(preemption_grace_s=120),
        )
    )
    assert result.preempted == (Preempt("m1", PreemptReason.RECLAIM, "c", 120),)
    waiting = result.waiting_by_id()
    assert waiting["c"].reason is Reason.PREEMPTING
    assert waiting["c"].eta == NOW + 120
    # The freed GPUs are promised to "c": the later job plans after c's run.
    assert waiting["late"].eta == NOW + 120 + H


def test_no_second_preemption_while_victims_terminate():
    result = plan_cycle(
        snapshot(
            now=NOW,
            queue=[make_job("c").team("cv").gpus(4)],
            # m1 was preempted for "c" last cycle; m2 is borrowed and could be taken too.
            allocations=[
                ml("m1", 0, 1, 2, 3).borrowed().terminating(NOW + 30),
                ml("m2", 4, 5, 6, 7, started=H).borrowed(),
            ],
            quotas=QUOTAS,
        )
    )
    assert result.preempted == ()
    (w,) = result.waiting
    assert w.eta == NOW + 30


def test_preemption_off_in_config():
    result = plan_cycle(
        snapshot(
            now=NOW,
            queue=[make_job("c").team("cv").gpus(4)],
            allocations=[ml("m1", *range(8)).borrowed()],
            quotas=QUOTAS,
            config=Config(preemption=False),
        )
    )
    assert result.preempted == ()


def test_a_job_admitted_in_this_cycle_is_not_also_preempted_in_it():
    """Issue 17: the lender's job ranked after a borrower's job admitted earlier in the same
    cycle reclaimed it at once: the cycle both admitted and preempted it (a pod started only
    to be killed). The admission is withdrawn instead: the borrower waits, no Preempt."""
    result = plan_cycle(
        snapshot(
            now=NOW,
            queue=[make_job("b").team("ml").user("dave").gpus(4), make_job("c").team("cv").gpus(4)],
            allocations=[make_alloc("cv0").team("cv").on("n1", 0, 1, 2, 3).runtime(LONG)],
            # cv used far more lately: fair share ranks ml's "b" first.
            usage=[UsageRecord("cv", "alice", 1e7, NOW)],
            quotas=QUOTAS,
        )
    )
    admitted = {a.job_id for a in result.admitted}
    preempted = {p.job_id for p in result.preempted}
    assert not admitted & preempted
    assert "b" not in admitted and "b" not in preempted
    waiting = result.waiting_by_id()
    assert waiting["b"].reason in (Reason.BEHIND, Reason.CAPACITY)
    assert waiting["c"].reason is Reason.PREEMPTING
    # Rank order is kept: "b" ranked first, so it is first in line.
    assert [w.job_id for w in result.waiting] == ["b", "c"]
    assert [w.position for w in result.waiting] == [1, 2]


def test_same_cycle_reclaim_without_preemptions_in_a_synthetic_queue():
    """On a busy synthetic cluster no job is both admitted and preempted by one cycle."""
    result = plan_cycle(
        synthetic_snapshot(queued=2000, nodes=50, gpus_per_node=8, reservations=100)
    )
    assert result.preempted
    assert not {a.job_id for a in result.admitted} & {p.job_id for p in result.preempted}
