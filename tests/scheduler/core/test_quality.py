"""Issue 17's surprises: order for short completion times without starvation, the fewest and
youngest victims, and non-preemptible work only within the guarantee."""

from __future__ import annotations

import random

import pytest

from scheduler.core import Config, PreemptReason, Reason, TeamQuota, UsageRecord, plan_cycle
from scheduler.core.fairshare import order_queue
from tests.scheduler.core.builders import (
    H,
    make_alloc,
    make_booking,
    make_job,
    make_node,
    snapshot,
)

NOW = 100 * H


def _order(queue, config=None, now=NOW):
    return [j.id for j in order_queue(snapshot(now=now, queue=queue, config=config))]


def test_within_a_turn_the_shortest_declared_runtime_goes_first():
    queue = [
        make_job("long").runtime(10 * H).submitted(NOW - 60),
        make_job("short").runtime(H / 2).submitted(NOW - 10),
    ]
    assert _order(queue) == ["short", "long"]
    assert _order(queue, Config(shortest_first=False)) == ["long", "short"]


def test_fair_share_still_comes_before_shortness():
    # Team "cv" has no usage, "ml" has: cv's long job outranks ml's short one.
    snap = snapshot(
        now=NOW,
        queue=[
            make_job("ml-short").runtime(60).submitted(NOW),
            make_job("cv-long").team("cv").user("carol").runtime(10 * H).submitted(NOW),
        ],
        usage=[UsageRecord("ml", "alice", 100 * H, NOW)],
    )
    assert order_queue(snap)[0].id == "cv-long"


@pytest.mark.parametrize("aging", [1.0, 0.25])
def test_a_long_job_outranks_every_later_arrival_once_it_waited_runtime_over_aging(aging):
    # Starvation bound: a 10-hour job submitted at 0 waits at most 10 h / aging for its turn
    # against a stream of short jobs that keeps arriving.
    rt, bound = 10 * H, 10 * H / aging
    cfg = Config(aging=aging)
    before = bound - H
    early = [make_job("long").runtime(rt).submitted(0)] + [
        make_job(f"s{i}").runtime(60).submitted(before - i) for i in range(5)
    ]
    assert _order(early, cfg, now=before)[-1] == "long"  # still overtaken before the bound
    rng = random.Random(7)
    later = [make_job("long").runtime(rt).submitted(0)] + [
        make_job(f"s{i}").runtime(rng.choice((0.0, 1.0, 60.0, H))).submitted(bound + rng.random())
        for i in range(20)
    ]
    assert _order(later, cfg, now=bound + 1)[0] == "long"
    # In a cycle on a one-GPU node: the long job is the one admitted.
    result = plan_cycle(
        snapshot(now=bound + 1, nodes=[make_node("n1").gpus(1)], queue=later, config=cfg)
    )
    assert [a.job_id for a in result.admitted] == ["long"]


def test_fifo_policies_keep_submit_order():
    queue = [
        make_job("long").runtime(10 * H).submitted(1),
        make_job("short").runtime(60).submitted(2),
    ]
    assert _order(queue, Config(fair_share=False, shortest_first=False)) == ["long", "short"]


def _reclaim_scenario():
    """Two 4-GPU nodes full of team ml's borrowed work; cv (2 guaranteed GPUs) wants 2.

    On n1 two young 2-GPU jobs; bob's booking from NOW + 30 min on GPUs 1 and 3 means a
    one-hour job freed by either alone finds one GPU only: n1 needs both to stop. On n2 one
    old 2-GPU job (the other two GPUs run non-preemptible work) is enough.
    """
    return snapshot(
        now=NOW,
        nodes=[make_node("n1").gpus(4), make_node("n2").gpus(4)],
        allocations=[
            make_alloc("young-a").on("n1", 0, 1).started(NOW - 60).runtime(10 * H).borrowed(),
            make_alloc("young-b").on("n1", 2, 3).started(NOW - 120).runtime(10 * H).borrowed(),
            make_alloc("old").on("n2", 0, 1).started(NOW - 5 * H).runtime(10 * H).borrowed(),
            make_alloc("pinned").on("n2", 2, 3).started(NOW - H).runtime(10 * H)
            .non_preemptible(),
        ],
        bookings=[make_booking("b").on("n1", 1, 3).window(NOW + H / 2, NOW + 2 * H)],
        queue=[make_job("cv-job").team("cv").user("carol").gpus(2).submitted(NOW)],
        quotas=[TeamQuota("cv", guaranteed_gpus=2), TeamQuota("ml", guaranteed_gpus=0)],
    )  # fmt: skip


def test_one_2gpu_job_preempts_one_victim_not_two_younger_ones():
    result = plan_cycle(_reclaim_scenario())
    assert [(p.job_id, p.reason) for p in result.preempted] == [("old", PreemptReason.RECLAIM)]
    assert result.waiting_by_id()["cv-job"].planned_node == "n2"


def test_on_a_node_one_bigger_victim_beats_two_small_younger_ones():
    # n1: two 1-GPU jobs (youngest) and one 2-GPU job; a 2-GPU preemptor stops one job.
    snap = snapshot(
        now=NOW,
        nodes=[make_node("n1").gpus(4)],
        allocations=[
            make_alloc("one-a").on("n1", 0).started(NOW - 60).runtime(10 * H).borrowed(),
            make_alloc("one-b").on("n1", 1).started(NOW - 70).runtime(10 * H).borrowed(),
            make_alloc("two").on("n1", 2, 3).started(NOW - H).runtime(10 * H).borrowed(),
        ],
        queue=[make_job("cv-job").team("cv").user("carol").gpus(2).submitted(NOW)],
        quotas=[TeamQuota("cv", guaranteed_gpus=2)],
    )
    assert [p.job_id for p in plan_cycle(snap).preempted] == ["two"]


def test_among_equal_counts_the_youngest_victim_goes():
    snap = snapshot(
        now=NOW,
        nodes=[make_node("n1").gpus(2), make_node("n2").gpus(2)],
        allocations=[
            make_alloc("older").on("n1", 0, 1).started(NOW - 2 * H).runtime(10 * H).borrowed(),
            make_alloc("younger").on("n2", 0, 1).started(NOW - H).runtime(10 * H).borrowed(),
        ],
        queue=[make_job("cv-job").team("cv").user("carol").gpus(2).submitted(NOW)],
        quotas=[TeamQuota("cv", guaranteed_gpus=2)],
    )
    assert [p.job_id for p in plan_cycle(snap).preempted] == ["younger"]


def test_non_preemptible_work_beyond_the_guarantee_waits_for_quota():
    snap = snapshot(
        nodes=[make_node("n1").gpus(8)],
        queue=[
            make_job("pinned").gpus(2).non_preemptible().submitted(0),
            make_job("pinned-over").gpus(4).non_preemptible().submitted(1),
            make_job("loose-over").gpus(4).submitted(2),
        ],
        quotas=[TeamQuota("ml", guaranteed_gpus=2), TeamQuota("cv", guaranteed_gpus=4)],
    )
    result = plan_cycle(snap)
    assert [(a.job_id, a.borrowed) for a in result.admitted] == [
        ("pinned", False),
        ("loose-over", True),
    ]
    waiting = result.waiting_by_id()["pinned-over"]
    assert waiting.reason is Reason.QUOTA
    assert "non-preemptible" in waiting.detail


def test_another_team_within_its_guarantee_is_never_blocked_by_non_preemptible_work():
    # ml (2 guaranteed) submits non-preemptible work over its guarantee first; cv (4
    # guaranteed) submits later. Cycle 1 runs what ml may; in cycle 2 cv's job starts,
    # reclaiming if it must, at once.
    nodes = [make_node("n1").gpus(8)]
    quotas = [TeamQuota("ml", guaranteed_gpus=2), TeamQuota("cv", guaranteed_gpus=4)]
    first = plan_cycle(
        snapshot(
            nodes=nodes,
            queue=[make_job(f"pin{i}").gpus(2).non_preemptible().submitted(i) for i in range(4)],
            quotas=quotas,
        )
    )
    running = [
        make_alloc(a.job_id).on(a.node, *a.gpu_indices).runtime(100 * H).non_preemptible()
        for a in first.admitted
    ]
    assert sum(len(a.gpu_indices) for a in first.admitted) <= 2
    second = plan_cycle(
        snapshot(
            now=60.0,
            nodes=nodes,
            allocations=running,
            queue=[make_job("cv-job").team("cv").user("carol").gpus(4).submitted(60)],
            quotas=quotas,
        )
    )
    assert [a.job_id for a in second.admitted] == ["cv-job"]


def test_the_old_rule_is_a_switch():
    snap = snapshot(
        nodes=[make_node("n1").gpus(8)],
        queue=[make_job("pinned-over").gpus(4).non_preemptible()],
        quotas=[TeamQuota("ml", guaranteed_gpus=2)],
        config=Config(nonpreemptible_within_guarantee=False),
    )
    assert [a.job_id for a in plan_cycle(snap).admitted] == ["pinned-over"]


def test_a_starving_job_outranks_fair_share_across_teams():
    # ml used far more than cv, so fair share ranks cv first; but ml's job has waited past
    # its runtime / aging (1.0 here): it goes first (within its priority class only).
    queue = [
        make_job("ml-old").runtime(2 * H).submitted(NOW - 2 * H),
        make_job("cv-new").team("cv").user("carol").runtime(60).submitted(NOW),
        make_job("cv-high").team("cv").user("carol").priority(10).runtime(H).submitted(NOW),
    ]
    usage = [UsageRecord("ml", "alice", 1000 * H, NOW)]
    cfg = Config(aging=1.0)
    snap = snapshot(now=NOW, queue=queue, usage=usage, config=cfg)
    assert [j.id for j in order_queue(snap)] == ["cv-high", "ml-old", "cv-new"]
    # Half an hour earlier ml-old had waited only 1.5 h of its 2 h bound: fair share ruled.
    earlier = snapshot(
        now=NOW - H / 2,
        queue=[
            make_job("ml-old").runtime(2 * H).submitted(NOW - 2 * H),
            make_job("cv-new").team("cv").user("carol").runtime(60).submitted(NOW - H / 2),
        ],
        usage=usage,
        config=cfg,
    )
    assert [j.id for j in order_queue(earlier)] == ["cv-new", "ml-old"]


def test_any_job_waiting_past_starvation_s_goes_first_oldest_first():
    queue = [
        make_job("ml-long").runtime(30 * 24 * H).submitted(0),
        make_job("cv-short").team("cv").user("carol").runtime(60).submitted(3 * 24 * H - 120),
    ]
    usage = [UsageRecord("ml", "alice", 1000 * H, NOW)]
    cfg = Config(starvation_s=3 * 24 * H)
    at_bound = snapshot(now=3 * 24 * H, queue=queue, usage=usage, config=cfg)
    assert [j.id for j in order_queue(at_bound)] == ["ml-long", "cv-short"]
    before = snapshot(now=3 * 24 * H - 1, queue=queue, usage=usage, config=cfg)
    assert [j.id for j in order_queue(before)] == ["cv-short", "ml-long"]
