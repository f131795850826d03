"""The cycle end to end: positions, ETAs and reasons for waiting jobs; determinism."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scheduler.core import Config, Reason, TeamQuota, plan_cycle
from scheduler.core.cache import ClusterUsage
from tests.scheduler.core.builders import H, make_alloc, make_job, make_node, snapshot

NOW = 50 * H


def _busy_two_gpu_node(**kw):
    """n1 has 2 GPUs, both busy for one more hour."""
    return snapshot(
        now=NOW,
        nodes=[make_node("n1").gpus(2)],
        allocations=[make_alloc("r").on("n1", 0, 1).started(NOW - H).runtime(2 * H)],
        **kw,
    )


def test_positions_and_etas_follow_the_shadow_schedule():
    result = plan_cycle(
        _busy_two_gpu_node(
            queue=[
                make_job("a").gpus(2).submitted(1),
                make_job("b").submitted(2),
                make_job("c").submitted(3).runtime(3 * H),
            ]
        )
    )
    got = [(w.job_id, w.reason, w.position, w.ahead, w.eta) for w in result.waiting]
    # a starts when r ends (in 1h) and holds both GPUs for 1h; b and c then share the node.
    assert got == [
        ("a", Reason.CAPACITY, 1, 0, NOW + H),
        ("b", Reason.BEHIND, 2, 1, NOW + 2 * H),
        ("c", Reason.BEHIND, 3, 2, NOW + 2 * H),
    ]
    assert result.waiting[1].detail == "behind other jobs of higher rank"


def test_gate_blocked_jobs_keep_their_place_in_line_without_an_eta():
    result = plan_cycle(
        _busy_two_gpu_node(
            queue=[make_job("a").team("cv").submitted(1), make_job("b").submitted(2)],
            quotas=[TeamQuota("cv", weekly_gpu_hours=0)],
        )
    )
    got = [(w.job_id, w.reason, w.position, w.eta) for w in result.waiting]
    # b is second in line, but a (held by its budget) doesn't compete for GPUs.
    assert got == [("a", Reason.BUDGET, 1, None), ("b", Reason.CAPACITY, 2, NOW + H)]


def test_plan_depth_bounds_the_etas():
    result = plan_cycle(
        _busy_two_gpu_node(
            queue=[make_job("a").submitted(1), make_job("b").submitted(2)],
            config=Config(plan_depth=1),
        )
    )
    assert [w.eta for w in result.waiting] == [NOW + H, None]


@pytest.mark.parametrize(
    ("reserve_depth", "want_admitted", "want_fill_reason"),
    [
        pytest.param(1, ["fill"], None, id="EASY: only the head's start is protected"),
        pytest.param(2, [], Reason.RESERVED, id="depth 2: the second blocked job's too"),
    ],
)
def test_reserve_depth(reserve_depth, want_admitted, want_fill_reason):
    # n1 (2 GPUs) is busy for 1h; n2 (2 GPUs) has GPU 0 busy for 1h and GPU 1 free. "head"
    # plans on n1 at +1h, "second" on n2 at +1h; "fill" (1 GPU, 3h) fits on n2's free GPU
    # now and would delay only "second".
    result = plan_cycle(
        snapshot(
            now=NOW,
            nodes=[make_node("n1").gpus(2), make_node("n2").gpus(2)],
            allocations=[
                make_alloc("r1").on("n1", 0, 1).started(NOW).runtime(H),
                make_alloc("r2").on("n2", 0).started(NOW).runtime(H),
            ],
            queue=[
                make_job("head").gpus(2).submitted(1),
                make_job("second").gpus(2).submitted(2),
                make_job("fill").runtime(3 * H).submitted(3),
            ],
            config=Config(reserve_depth=reserve_depth),
        )
    )
    assert [a.job_id for a in result.admitted] == want_admitted
    waiting = result.waiting_by_id()
    assert (waiting["head"].planned_node, waiting["head"].eta) == ("n1", NOW + H)
    assert (waiting["second"].planned_node, waiting["second"].eta) == ("n2", NOW + H)
    assert (waiting["fill"].reason if "fill" in waiting else None) == want_fill_reason


def test_work_past_its_deadline_still_holds_its_gpus():
    result = plan_cycle(
        snapshot(
            now=NOW,
            nodes=[make_node("n1").gpus(1)],
            allocations=[make_alloc("r").on("n1", 0).started(0).runtime(H)],
            queue=[make_job("a")],
        )
    )
    assert result.admitted == ()
    assert result.waiting[0].eta == NOW + 60


def test_cycle_is_deterministic_and_leaves_the_snapshot_alone():
    snap = _busy_two_gpu_node(queue=[make_job(f"j{i}").submitted(i) for i in range(5)])
    before = replace(snap)
    assert plan_cycle(snap) == plan_cycle(snap)
    assert snap == before


def test_add_and_remove_usage_are_inverse():
    snap = snapshot(now=NOW)
    usage = ClusterUsage(snap, ())
    alloc = make_alloc("x").team("cv").user("carol").on("n1", 2, 3).cpu(4000).sweep("s").build()
    usage.add_usage(alloc)
    assert (usage.team_gpus["cv"], usage.user_gpus["carol"], usage.sweep_jobs["s"]) == (2, 2, 1)
    assert usage.nodes["n1"].free == {0, 1, 4, 5, 6, 7}
    usage.remove_usage(alloc)
    assert (usage.team_gpus["cv"], usage.user_gpus["carol"], usage.sweep_jobs["s"]) == (0, 0, 0)
    assert usage.nodes["n1"].free == set(range(8))
    assert usage.nodes["n1"].cpu_free == snap.nodes[0].cpu_milli


def test_remove_usage_with_grace_keeps_the_gpus_busy():
    usage = ClusterUsage(snapshot(now=NOW), ())
    alloc = make_alloc("x").on("n1", 0).build()
    usage.add_usage(alloc)
    usage.remove_usage(alloc, busy_until=NOW + 60)
    assert usage.team_gpus["ml"] == 0
    assert usage.nodes["n1"].busy_until[0] == NOW + 60
    assert 0 not in usage.nodes["n1"].free


def _decided(result):
    """What a replay reads from a cycle: who starts where, who stops, why the rest wait."""
    return (
        [(a.job_id, a.node, len(a.gpu_indices), a.borrowed) for a in result.admitted],
        result.preempted,
        result.released,
        [(w.job_id, w.reason, w.detail, w.position, w.ahead) for w in result.waiting],
    )


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(Config(), id="default-with-preemption"),
        pytest.param(Config(preemption=False), id="no-preemption"),
        pytest.param(Config(fair_share=False, backfill=False, preemption=False), id="fifo"),
        pytest.param(Config(reserve_depth=3, plan_depth=40), id="deeper-protection"),
    ],
)
@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed-{s}")
def test_skipping_eta_only_plans_keeps_decisions(config, seed):
    from scheduler.sim.synthetic import synthetic_snapshot

    snap = synthetic_snapshot(queued=400, nodes=12, seed=seed, config=config)
    full = plan_cycle(snap)
    lean = plan_cycle(replace(snap, config=replace(config, plan_etas=False)))
    assert _decided(lean) == _decided(full)
    etas = {w.job_id: w.eta for w in full.waiting}
    # Plans still made are the same plans; the others leave the ETA unknown.
    assert all(w.eta is None or w.eta == etas[w.job_id] for w in lean.waiting)
    assert sum(w.eta is not None for w in lean.waiting) <= sum(e is not None for e in etas.values())


def test_plans_are_the_same_with_or_without_the_per_node_memo(monkeypatch):
    from scheduler.core import placement
    from scheduler.sim.synthetic import synthetic_snapshot

    snap = synthetic_snapshot(queued=600, nodes=20, reservations=60, seed=7)
    remembered = plan_cycle(snap)
    monkeypatch.setattr(
        placement,
        "_earliest_memo",
        lambda state, job, now, bound: placement._earliest_on(state, job, now, bound),
    )
    assert plan_cycle(snap) == remembered
