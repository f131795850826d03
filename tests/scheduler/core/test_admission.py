"""Admission gates of the cycle: guaranteed quota and borrowing, budgets, user and sweep caps."""

from __future__ import annotations

import pytest

from scheduler.core import Admit, Config, Reason, TeamQuota, plan_cycle
from tests.scheduler.core.builders import H, make_alloc, make_job, snapshot


@pytest.mark.parametrize(
    ("queue", "allocations", "quotas", "user_caps", "config", "want_admitted", "want_reasons"),
    [
        pytest.param(
            [make_job("a").team("cv").gpus(4)], [], [TeamQuota("cv", guaranteed_gpus=4)],
            None, None, {"a": False}, {},
            id="within the guarantee: admitted, not borrowed",
        ),
        pytest.param(
            [make_job("a").team("cv").gpus(4)], [], [TeamQuota("cv", guaranteed_gpus=2)],
            None, None, {"a": True}, {},
            id="beyond the guarantee with idle GPUs: admitted as borrowed",
        ),
        pytest.param(
            [make_job("a").team("cv").gpus(4)],
            [make_alloc("r").team("cv").on("n1", 0, 1)], [TeamQuota("cv", guaranteed_gpus=4)],
            None, None, {"a": True}, {},
            id="running work counts toward the guarantee",
        ),
        pytest.param(
            [make_job("a").team("cv").gpus(4)], [],
            [TeamQuota("cv", guaranteed_gpus=2, borrowing_allowed=False)],
            None, None, {}, {"a": Reason.QUOTA},
            id="borrowing off: waits for quota",
        ),
        pytest.param(
            [make_job("a").team("cv").gpus(4), make_job("b").team("cv").gpus(3).submitted(1)],
            [], [TeamQuota("cv", guaranteed_gpus=2, borrowing_limit=1)],
            None, None, {"b": True}, {"a": Reason.QUOTA},
            id="borrowing limit: 2 over is refused, 1 over is borrowed",
        ),
        pytest.param(
            [make_job("a").team("cv")], [],
            [TeamQuota("cv", weekly_gpu_hours=10, spent_gpu_hours=10)],
            None, None, {}, {"a": Reason.BUDGET},
            id="weekly budget spent: waits with budget",
        ),
        pytest.param(
            [make_job("a").team("cv").gpus(4)], [],
            [TeamQuota("cv", weekly_gpu_hours=10, spent_gpu_hours=8)],
            None, None, {}, {"a": Reason.BUDGET},
            id="budget left (2h) but the job may need 4h: waits with budget",
        ),
        pytest.param(
            [make_job(x).team("cv").gpus(2).runtime(2 * H).submitted(i)
             for i, x in enumerate("abc")],
            [], [TeamQuota("cv", weekly_gpu_hours=10)],
            None, None, {"a": True, "b": True}, {"c": Reason.BUDGET},
            id="budget counts jobs admitted earlier in the same cycle",
        ),
        pytest.param(
            [make_job("a").team("cv").gpus(4)],
            [make_alloc("r").team("cv").on("n1", 0, 1).started(10.0)],
            [TeamQuota("cv", weekly_gpu_hours=5)],
            None, None, {"a": True}, {},
            id="work already running is in spent hours, not counted again",
        ),
        pytest.param(
            [make_job("a").gpus(0).team("cv")], [],
            [TeamQuota("cv", weekly_gpu_hours=10, spent_gpu_hours=10)],
            None, None, {"a": False}, {},
            id="a CPU-only job spends no GPU budget",
        ),
        pytest.param(
            [make_job("a").user("alice").gpus(4), make_job("b").user("bob").gpus(4).submitted(1)],
            [make_alloc("r").user("alice").on("n1", 0, 1)], [],
            {"alice": 4}, None, {"b": True}, {"a": Reason.USER_CAP},
            id="per-user cap: alice holds 2 of 4, asks 4 more; bob is not capped",
        ),
        pytest.param(
            [make_job("a").user("alice").gpus(3)], [], [],
            None, Config(default_user_gpu_cap=2), {}, {"a": Reason.USER_CAP},
            id="the default user cap applies to users without their own",
        ),
        pytest.param(
            [make_job(f"s{i}").sweep("s", 2).submitted(i) for i in range(1, 4)],
            [make_alloc("s0").on("n1", 0).sweep("s")], [],
            None, None, {"s1": True}, {"s2": Reason.SWEEP_CAP, "s3": Reason.SWEEP_CAP},
            id="sweep parallelism 2 with one running: one more starts",
        ),
    ],
)  # fmt: skip
def test_admission(queue, allocations, quotas, user_caps, config, want_admitted, want_reasons):
    result = plan_cycle(
        snapshot(
            now=10.0,
            queue=queue,
            allocations=allocations,
            quotas=quotas,
            user_caps=user_caps,
            config=config,
        )
    )
    assert {a.job_id: a.borrowed for a in result.admitted} == want_admitted
    waiting = result.waiting_by_id()
    assert {j: waiting[j].reason for j in want_reasons} == want_reasons


def test_gate_blocked_jobs_have_no_eta_and_a_clear_detail():
    result = plan_cycle(
        snapshot(
            queue=[make_job("a").team("cv").gpus(4)],
            quotas=[TeamQuota("cv", weekly_gpu_hours=10, spent_gpu_hours=8)],
        )
    )
    (w,) = result.waiting
    assert w.eta is None
    assert "8.0 of 10.0 GPU-hours" in w.detail
    assert "4.0" in w.detail


def test_admits_go_to_free_gpus_only():
    result = plan_cycle(
        snapshot(
            queue=[make_job("a").gpus(4)],
            allocations=[make_alloc("r").on("n1", 0, 1, 2, 3).runtime(10 * H)],
        )
    )
    assert result.admitted == (Admit("a", "n1", (4, 5, 6, 7), True),)
