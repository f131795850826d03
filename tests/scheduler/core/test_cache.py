"""``ClusterUsage``/``NodeState``: the derived views stay consistent with the raw state.

The cycle keeps several caches for speed (per-GPU exclusions for jobs holding no booking,
per-GPU start bounds, the schedulable nodes with a free GPU and their buckets by free GPUs,
per-shape eligible nodes, preemption's per-node views). Each
test drives random sequences of ``add_usage`` / ``remove_usage`` / ``add_block`` and checks
every cache against a fresh computation from the raw blocks and busy times.
"""

from __future__ import annotations

import random

import pytest

from scheduler.core.cache import Block, ClusterUsage, Exclusions, NodeState
from scheduler.core.preemption import _at
from scheduler.core.snapshot import Allocation, Booking, Snapshot
from scheduler.sim.synthetic import NOW, synthetic_snapshot


def _fresh_exclusions(state: NodeState, gpu: int, team: str, user: str, soft: bool) -> Exclusions:
    spans = [
        (b.end, b.end)
        if (b.user is not None and b.user == user) or (b.team is not None and b.team == team)
        else (b.start, b.end)
        for b in state.blocks.get(gpu, ())
        if soft or not b.soft
    ]
    return Exclusions.of(spans)


def _fresh_bounds(state: NodeState) -> list[float]:
    return sorted(
        Exclusions.of(
            [(b.start, b.end) for b in state.blocks.get(g, ()) if b.team is b.user is None]
        ).first_free(state.busy_until[g])
        for g in state.usable
    )


def _check(usage: ClusterUsage, people: list[tuple[str, str]]) -> None:
    for name, state in usage.nodes.items():
        assert state.free == {g for g, t in state.busy_until.items() if t <= usage.now}
        has_free = bool(state.free) and state.node.schedulable
        assert (name in usage.with_free) == has_free
        assert state.start_bounds() == _fresh_bounds(state)
        for g in state.usable:
            for team, user in people:
                for soft in (False, True):
                    got = state.exclusions(g, team, user, soft)
                    want = _fresh_exclusions(state, g, team, user, soft)
                    assert (got.starts, got.max_ends) == (want.starts, want.max_ends)
    # Nodes with free GPUs by how many, each bucket sorted by name (``place_now``'s order).
    buckets: dict[int, list[str]] = {}
    for name, state in sorted(usage.with_free.items()):
        buckets.setdefault(len(state.free), []).append(name)
    assert {n: names for n, names in usage.by_free.items() if names} == buckets
    # Preemption's remembered views: GPUs free at an instant, a node's candidates.
    start = usage.now + 60.0
    for state in usage.nodes.values():
        free_then, busy_then = _at(state, start)
        assert busy_then == {g for g, t in state.busy_until.items() if t > start}
        assert free_then == len(state.busy_until) - len(busy_then)
    for memo in usage.candidates.values():
        for node, (version, found, _) in memo.items():
            if version == usage.running_version[node]:
                assert {a.job_id for a, _ in found} <= set(usage.on_node[node])
    team_gpus: dict[str, int] = {}
    for a in usage.running.values():
        team_gpus[a.team] = team_gpus.get(a.team, 0) + a.gpus
    assert {t: n for t, n in usage.team_gpus.items() if n} == team_gpus


@pytest.mark.parametrize("seed", range(4), ids=lambda s: f"random-history-{s}")
def test_caches_follow_add_usage_remove_usage_and_blocks(seed: int) -> None:
    rng = random.Random(seed)
    snap = synthetic_snapshot(queued=0, nodes=6, gpus_per_node=8, reservations=12, seed=seed)
    team_booking = Booking("team-bk", snap.nodes[0].name, (1, 2), NOW + 600, NOW + 7200, team="nlp")
    bookings = (*snap.bookings, team_booking)
    usage = ClusterUsage(snap, bookings)
    people = [("vision", "vision-u1"), ("nlp", "nlp-u0"), ("x", "booker"), ("x", "y")]
    _check(usage, people)
    for step in range(60):
        state = rng.choice(list(usage.nodes.values()))
        op = rng.random()
        if op < 0.4 and state.free:
            gpus = tuple(sorted(rng.sample(sorted(state.free), rng.randint(1, len(state.free)))))
            team, user = rng.choice(people)
            a = Allocation(f"new-{step}", team, user, state.node.name, gpus, NOW, 3600.0)
            usage.add_usage(a, admitted_now=True)
        elif op < 0.7 and usage.running:
            a = rng.choice(list(usage.running.values()))
            usage.remove_usage(a, busy_until=rng.choice((None, NOW + 60.0)))
        else:
            start = NOW + rng.uniform(0, 20_000)
            block = Block(start, start + rng.uniform(600, 20_000), soft=rng.random() < 0.5)
            for g in rng.sample(state.usable, rng.randint(1, 3)):
                state.add_block(g, block)
        # Read the caches between changes too, so stale entries would be caught.
        if step % 3 == 0:
            _check(usage, people)
    _check(usage, people)


def test_holder_sees_its_own_booking_as_an_end_only() -> None:
    snap = synthetic_snapshot(queued=0, nodes=1, gpus_per_node=8)
    booking = Booking("b", snap.nodes[0].name, (0,), NOW + 100, NOW + 200, team="nlp")
    state = ClusterUsage(snap, (booking,)).nodes[snap.nodes[0].name]
    # An outsider's view is cached and shared; the holder's is computed for it.
    assert state.exclusions(0, "vision", "v", True).starts == [NOW + 100]
    assert state.exclusions(0, "nlp", "n", True).starts == [NOW + 200]
    assert state.exclusions(0, "vision", "v", True).starts == [NOW + 100]


def test_eligible_nodes_are_computed_once_per_shape() -> None:
    from scheduler.core.placement import eligible_nodes

    snap: Snapshot = synthetic_snapshot(queued=5, nodes=4)
    usage = ClusterUsage(snap, ())
    job = snap.queue[0]
    first = eligible_nodes(usage, job)
    assert eligible_nodes(usage, job) is first
    assert all(job.gpus == 0 or not job.models or s.node.gpu_model in job.models
               for s in first.values())  # fmt: skip


@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"random-blocks-{s}")
def test_exclusions_agree_with_block_excludes(seed: int) -> None:
    # Placement checks windows with one bisect on ``exclusions``; ``Block.excludes`` is the
    # rule written out. They must agree for holders and outsiders, soft or not.
    rng = random.Random(seed)
    snap = synthetic_snapshot(queued=0, nodes=1, gpus_per_node=2)
    state = ClusterUsage(snap, ()).nodes[snap.nodes[0].name]
    for _ in range(12):
        start = NOW + rng.uniform(0, 1000)
        block = Block(
            start,
            start + rng.uniform(1, 300),
            team=rng.choice((None, "nlp")),
            user=rng.choice((None, "booker")),
            soft=rng.random() < 0.3,
        )
        state.add_block(0, block)
    for _ in range(300):
        s = NOW + rng.uniform(-100, 1400)
        e = s + rng.choice((0.0, rng.uniform(1, 400)))
        for team, user in (("nlp", "x"), ("vision", "booker"), ("vision", "x")):
            for soft in (False, True):
                want = not any(
                    (soft or not b.soft) and b.excludes(s, e, team, user) for b in state.blocks[0]
                )
                assert state.exclusions(0, team, user, soft).free(s, e) == want
