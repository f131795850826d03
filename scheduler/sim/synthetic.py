"""Synthetic snapshots for measuring cycle time (``sched bench`` and the benchmarks).

The cluster is about 70% busy with running work of several teams; the queue mixes 1-, 2-,
4- and 8-GPU jobs of a few priority classes, some with model constraints and some in sweeps;
bookings are spread over the next week. Deterministic for a seed.
"""

from __future__ import annotations

import random

from scheduler.core.snapshot import (
    Allocation,
    Booking,
    Config,
    Gpu,
    Node,
    QueuedJob,
    Snapshot,
    TeamQuota,
    UsageRecord,
)

NOW = 1_800_000_000.0
TEAMS = ("vision", "nlp", "ranking", "speech")
MODELS = ("A100", "H100")


def synthetic_snapshot(
    queued: int = 1000,
    nodes: int = 50,
    gpus_per_node: int = 8,
    reservations: int = 0,
    seed: int = 0,
    config: Config | None = None,
) -> Snapshot:
    """A snapshot with ``queued`` waiting jobs on ``nodes`` x ``gpus_per_node`` GPUs."""
    rng = random.Random(seed)  # noqa: S311 - benchmark data, not secrets
    node_rows = tuple(
        Node(f"gpu-{i:03d}", MODELS[i % 2], tuple(Gpu(g) for g in range(gpus_per_node)))
        for i in range(nodes)
    )
    allocations: list[Allocation] = []
    for node in node_rows:
        g = 0
        while g < gpus_per_node and rng.random() < 0.7:
            width = min(rng.choice((1, 1, 2, 4)), gpus_per_node - g)
            team = rng.choice(TEAMS)
            allocations.append(
                Allocation(
                    f"run-{len(allocations)}",
                    team,
                    f"{team}-u{rng.randrange(5)}",
                    node.name,
                    tuple(range(g, g + width)),
                    NOW - rng.uniform(0, 36_000),
                    rng.choice((3600.0, 4 * 3600.0, 24 * 3600.0)),
                    borrowed=rng.random() < 0.3,
                )
            )
            g += width
    bookings = []
    for i in range(reservations):
        node = node_rows[rng.randrange(nodes)]
        start = NOW + rng.uniform(0, 7 * 86400)
        gpu = rng.randrange(gpus_per_node)
        bookings.append(
            Booking(f"bk-{i}", node.name, (gpu,), start, start + 4 * 3600, user="booker")
        )
    queue = []
    for i in range(queued):
        team = rng.choice(TEAMS)
        sweep = f"sweep-{i % 20}" if rng.random() < 0.2 else None
        queue.append(
            QueuedJob(
                f"job-{i}",
                team,
                f"{team}-u{rng.randrange(5)}",
                rng.choice((1, 1, 1, 2, 2, 4, 8)),
                rng.choice((1800.0, 3600.0, 4 * 3600.0)),
                NOW - rng.uniform(0, 86400),
                frozenset({rng.choice(MODELS)}) if rng.random() < 0.3 else frozenset(),
                priority=rng.choice((0, 0, 0, 10)),
                sweep_id=sweep,
                sweep_parallelism=4 if sweep else None,
            )
        )
    usage = tuple(
        UsageRecord(t, f"{t}-u{u}", rng.uniform(0, 1e6), NOW - rng.uniform(0, 14 * 86400))
        for t in TEAMS
        for u in range(5)
    )
    quotas = {t: TeamQuota(t, guaranteed_gpus=nodes * gpus_per_node // 5) for t in TEAMS}
    return Snapshot(
        NOW,
        node_rows,
        tuple(queue),
        tuple(allocations),
        tuple(bookings),
        usage,
        quotas,
        config=config or Config(),
    )
