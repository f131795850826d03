"""The optimised core decides exactly what the straightforward one (``oracle``) decides.

The speed-ups of issue 17 (nodes kept sorted by start bound across plans, a lower bound
that skips nodes in the victim search, the window checks done once per node, waiting rows
built without the frozen dataclass' per-field ``__setattr__``) must not change one
decision, reason, position or ETA. Synthetic snapshots of several sizes, seeds and
policies, some with gangs, non-preemptible work and bookings, are planned by both.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from scheduler.core import Config, CycleResult, Packing, Snapshot, plan_cycle
from scheduler.sim.synthetic import synthetic_snapshot
from tests.scheduler.core.oracle.cycle import plan_cycle as oracle_plan_cycle


def _with_gangs_and_pinned(snap: Snapshot, seed: int) -> Snapshot:
    """Some queued jobs become 2- or 3-node gangs, some non-preemptible, some high priority."""
    rng = random.Random(seed)
    queue = []
    for job in snap.queue:
        roll = rng.random()
        if roll < 0.05:
            job = replace(job, gpus=8, nodes=rng.choice((2, 3)))
        elif roll < 0.1:
            job = replace(job, preemptible=False)
        elif roll < 0.15:
            job = replace(job, priority=50)
        queue.append(job)
    return replace(snap, queue=tuple(queue))


def _snapshots() -> list[tuple[str, Snapshot]]:
    out = []
    for seed, (queued, nodes, bookings) in enumerate(
        [(300, 10, 20), (1000, 50, 100), (2000, 40, 300), (3000, 100, 500)]
    ):
        base = synthetic_snapshot(queued, nodes, 8, bookings, seed=seed)
        out.append((f"default-{queued}q-{nodes}n", base))
        out.append((f"gangs-{queued}q-{nodes}n", _with_gangs_and_pinned(base, seed)))
    small = synthetic_snapshot(800, 30, 8, 80, seed=7)
    for name, cfg in [
        ("no-etas", Config(plan_etas=False)),
        ("worst-fit", Config(packing=Packing.WORST_FIT)),
        ("fifo", Config(fair_share=False, backfill=False, preemption=False, shortest_first=False)),
        ("deep-reserve", Config(reserve_depth=5, plan_depth=50)),
        ("user-caps", Config(default_user_gpu_cap=8)),
    ]:
        out.append((name, replace(small, config=cfg)))
        out.append((f"{name}-gangs", replace(_with_gangs_and_pinned(small, 3), config=cfg)))
    return out


def _decisions(result: CycleResult) -> tuple[object, ...]:
    return (result.admitted, result.preempted, result.released, result.waiting)


@pytest.mark.parametrize(("name", "snap"), [pytest.param(n, s, id=n) for n, s in _snapshots()])
def test_same_decisions_as_the_oracle(name: str, snap: Snapshot) -> None:
    got, want = plan_cycle(snap), oracle_plan_cycle(snap)
    assert want.admitted or want.waiting  # the snapshot gives the cycle something to decide
    assert _decisions(got) == _decisions(want), name


def test_the_snapshots_exercise_preemption_gangs_bookings_and_withdrawals() -> None:
    """The comparison is only worth something if the hard paths run."""
    snaps = [snap for _, snap in _snapshots()]
    results = [oracle_plan_cycle(snap) for snap in snaps]
    assert sum(len(r.preempted) for r in results) >= 20
    gangs = {j.id for s in snaps for j in s.queue if j.nodes > 1}
    assert any(w.job_id in gangs and w.eta is not None for r in results for w in r.waiting)
    # Admissions the same cycle withdrew for a reclaiming or higher-priority job.
    assert any(w.detail.startswith("its GPUs were claimed") for r in results for w in r.waiting)
    assert any(w.reason.value == "reserved" for r in results for w in r.waiting)
    assert any(w.reason.value == "preempting" for r in results for w in r.waiting)


@pytest.mark.parametrize(
    ("name", "snap"),
    [pytest.param(n, s, id=n) for n, s in _snapshots() if "300q" in n or "gangs" in n],
)
def test_the_queue_order_given_does_not_matter(name: str, snap: Snapshot) -> None:
    """The services layer reads the queue in whatever order PostgreSQL returns it (no ORDER
    BY): the core ranks it, so a shuffled queue gets exactly the same decisions."""
    shuffled = list(snap.queue)
    random.Random(name).shuffle(shuffled)
    assert shuffled != list(snap.queue)
    got = plan_cycle(replace(snap, queue=tuple(shuffled)))
    assert _decisions(got) == _decisions(plan_cycle(snap)), name
