"""Queue order: priority class, then fair share (team, then user), then the aged shortest
declared runtime (or submit time) within a turn."""

from __future__ import annotations

import random

import pytest

from scheduler.core import Config, Snapshot, TeamQuota, UsageRecord
from scheduler.core.fairshare import (
    decay,
    decayed_usage,
    fair_share_factor,
    order_queue,
    within_turn,
)
from tests.scheduler.core.builders import H, make_alloc, make_job, snapshot

NOW = 30 * 24 * H
WEEK = 7 * 24 * H


@pytest.mark.parametrize(
    ("queue", "usage", "quotas", "allocations", "config", "want_order"),
    [
        pytest.param(
            [make_job("a").submitted(0), make_job("b").priority(10).submitted(100)],
            [], [], [], None, ["b", "a"],
            id="a higher priority class goes first even when submitted later",
        ),
        pytest.param(
            [make_job("a").team("cv").user("carol"), make_job("b").team("ml").submitted(5)],
            [UsageRecord("cv", "carol", 10 * H, NOW)], [], [], None, ["b", "a"],
            id="same priority: the team with less usage goes first",
        ),
        pytest.param(
            [make_job("a").team("ml").user("dave"), make_job("b").team("cv").submitted(5)],
            [UsageRecord("cv", "carol", 10 * H, NOW - 2 * WEEK),
             UsageRecord("ml", "dave", 6 * H, NOW)],
            [], [], None, ["b", "a"],
            id="usage decays: 10h two half-lives ago (2.5h) ranks before 6h today",
        ),
        pytest.param(
            [make_job("a").team("ml").user("dave"), make_job("b").team("cv").submitted(5)],
            [UsageRecord("cv", "carol", 9 * H, NOW), UsageRecord("ml", "dave", 4 * H, NOW)],
            [TeamQuota("cv", share_weight=3.0)], [], None, ["b", "a"],
            id="share weight: 9h on weight 3 ranks before 4h on weight 1",
        ),
        pytest.param(
            [make_job("a").user("alice"), make_job("b").user("bob").submitted(5)],
            [UsageRecord("ml", "alice", 5 * H, NOW), UsageRecord("ml", "bob", 1 * H, NOW)],
            [], [], None, ["b", "a"],
            id="within a team: the user with less usage goes first",
        ),
        pytest.param(
            [make_job("late").submitted(50), make_job("early").submitted(10)],
            [], [], [], None, ["early", "late"],
            id="equal priority and usage: submit time decides",
        ),
        pytest.param(
            [make_job("cv0").team("cv").user("carol").submitted(0),
             make_job("cv1").team("cv").user("carol").submitted(1),
             make_job("cv2").team("cv").user("carol").submitted(2),
             make_job("ml3").team("ml").user("dave").submitted(3),
             make_job("ml4").team("ml").user("dave").submitted(4)],
            [], [], [], None, ["cv0", "ml3", "cv1", "ml4", "cv2"],
            id="equal history: two teams interleave instead of first-come taking all",
        ),
        pytest.param(
            [make_job("a").team("cv").user("carol"), make_job("b").team("ml").submitted(5)],
            [], [], [make_alloc("r").team("cv").user("carol").on("n1", 0, 1, 2, 3)
                     .started(NOW - 2 * H)],
            None, ["b", "a"],
            id="running work counts as usage",
        ),
        pytest.param(
            [make_job("a").team("cv").user("carol"), make_job("b").team("ml").submitted(5)],
            [UsageRecord("cv", "carol", 10 * H, NOW)], [], [], Config(fair_share=False),
            ["a", "b"],
            id="fair share off (fifo): submit time only",
        ),
    ],
)  # fmt: skip
def test_order(queue, usage, quotas, allocations, config, want_order):
    # Fair share's order with FIFO turns (these jobs have waited 30 days: aged shortest-first
    # would call them starving; see test_quality.py for that order).
    config = config or Config(shortest_first=False)
    snap = snapshot(
        now=NOW, queue=queue, usage=usage, quotas=quotas, allocations=allocations, config=config
    )
    assert [j.id for j in order_queue(snap)] == want_order


def test_decay_halves_per_half_life():
    assert decay(80.0, 2 * WEEK, WEEK) == pytest.approx(20.0)
    assert decay(80.0, 0, WEEK) == 80.0


@pytest.mark.parametrize(
    ("usage", "total", "share", "total_share", "want"),
    [
        pytest.param(0.0, 0.0, 1.0, 1.0, 1.0, id="no usage anywhere: factor 1"),
        pytest.param(50.0, 100.0, 1.0, 2.0, 0.5, id="used exactly its share: one half"),
        pytest.param(100.0, 100.0, 1.0, 4.0, 2.0**-4, id="used all on a quarter share"),
    ],
)
def test_fair_share_factor(usage, total, share, total_share, want):
    assert fair_share_factor(usage, total, share, total_share) == pytest.approx(want)


def _reference_order(snap: Snapshot) -> list[str]:
    """The definition, slowly: re-rank every waiting job after each one is taken."""
    team_use, user_use = decayed_usage(
        snap.usage, snap.allocations, snap.now, snap.config.usage_half_life_s
    )
    aging = snap.config.aging if snap.config.shortest_first else None
    waiting, ordered = list(snap.queue), []
    cap = snap.config.starvation_s
    starving = [
        j
        for j in waiting
        if aging is not None
        and (
            (aging > 0 and within_turn(j, snap.now, aging) <= 0)
            or (cap is not None and snap.now - j.submitted_at >= cap)
        )
    ]
    for job in starving:
        waiting.remove(job)
        team_use[job.team] += job.gpu_seconds
        user_use[job.user] += job.gpu_seconds
    while waiting:
        job = min(
            waiting,
            key=lambda j: (
                -j.priority,
                team_use[j.team] / max(snap.quota(j.team).share_weight, 1e-9),
                user_use[j.user] / max(snap.user_share_weights.get(j.user, 1.0), 1e-9),
                within_turn(j, snap.now, aging),
                j.id,
            ),
        )
        waiting.remove(job)
        ordered.append(job.id)
        team_use[job.team] += job.gpu_seconds
        user_use[job.user] += job.gpu_seconds
    # Starving jobs go first within their priority class, most overdue first.
    prio = {j.id: j.priority for j in snap.queue}
    first = sorted(starving, key=lambda j: (-j.priority, j.submitted_at, j.id))
    return sorted([j.id for j in first] + ordered, key=lambda i: -prio[i])


@pytest.mark.parametrize("shortest_first", [True, False], ids=["aged-sjf", "fifo-in-turn"])
@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"random-queue-{s}")
def test_order_matches_reranking_after_every_job(seed: int, shortest_first: bool) -> None:
    # Users who work in several teams, share weights and priority classes: the heaps'
    # lazy re-ranking must give exactly the order of re-ranking everything each time.
    rng = random.Random(seed)
    teams, users = ["a", "b", "c"], ["u1", "u2", "u3", "u4"]
    queue = tuple(
        make_job(f"j{i}")
        .team(rng.choice(teams))
        .user(rng.choice(users))
        .gpus(rng.choice((1, 2, 4, 8)))
        .runtime(rng.choice((H, 2 * H, 5 * H)))
        .submitted(float(rng.randrange(50)))
        .priority(rng.choice((0, 0, 5)))
        .build()
        for i in range(rng.randint(1, 60))
    )
    usage = tuple(UsageRecord(t, u, rng.uniform(0, 50 * H), 0.0) for t in teams for u in users[:2])
    quotas = {t: TeamQuota(t, share_weight=rng.choice((0.5, 1.0, 3.0))) for t in teams}
    snap = Snapshot(
        now=100.0,
        nodes=(),
        queue=queue,
        usage=usage,
        quotas=quotas,
        user_share_weights={"u3": 2.0},
        config=Config(
            shortest_first=shortest_first,
            aging=rng.choice((0.0, 0.5, 2.0, 100.0)),
            starvation_s=rng.choice((None, 60.0)),
        ),
    )
    assert [j.id for j in order_queue(snap)] == _reference_order(snap)
