"""Multi-node jobs: all-or-nothing gang placement, topology, planning and preemption."""

from __future__ import annotations

import random

import pytest

from scheduler.core import Admit, Config, PreemptReason, Reason, TeamQuota, plan_cycle
from tests.scheduler.core.builders import H, make_alloc, make_job, make_node, snapshot

NOW = 10 * H


def _two_gpu_nodes(n: int, racks: str = "") -> list:
    return [make_node(f"n{i}").gpus(2).topology(racks[i] if racks else "") for i in range(n)]


def _pods(admit: Admit) -> list[tuple[str, tuple[int, ...]]]:
    return list(admit.pods)


def test_a_6_gpu_job_runs_on_three_2_gpu_nodes():
    snap = snapshot(nodes=_two_gpu_nodes(4), queue=[make_job("big").gpus(2).nodes(3)])
    (admit,) = plan_cycle(snap).admitted
    pods = _pods(admit)
    assert len(pods) == 3
    assert len({node for node, _ in pods}) == 3  # distinct nodes
    assert all(gpus == (0, 1) for _, gpus in pods)
    assert (admit.node, admit.gpu_indices) == pods[0]


def test_single_node_admits_keep_their_shape():
    (admit,) = plan_cycle(snapshot(queue=[make_job("a").gpus(2)])).admitted
    assert admit == Admit("a", "n1", (0, 1), True)  # no quota: borrowed
    assert admit.pods == (("n1", (0, 1)),)


def test_a_gang_never_starts_in_part_and_waits_for_enough_nodes():
    # Two of four nodes busy for an hour: a 3-node gang waits, with an ETA in an hour.
    snap = snapshot(
        now=NOW,
        nodes=_two_gpu_nodes(4),
        allocations=[
            make_alloc("r0").on("n0", 0, 1).started(NOW).runtime(H),
            make_alloc("r1").on("n1", 0, 1).started(NOW).runtime(2 * H),
        ],
        queue=[make_job("big").gpus(2).nodes(3).submitted(NOW)],
        config=Config(preemption=False),
    )
    result = plan_cycle(snap)
    assert result.admitted == ()
    (w,) = result.waiting
    assert (w.reason, w.eta) == (Reason.CAPACITY, NOW + H)


def test_a_gang_larger_than_the_cluster_is_too_big_and_a_fitting_one_is_not():
    result = plan_cycle(
        snapshot(
            nodes=_two_gpu_nodes(2),
            queue=[make_job("huge").gpus(2).nodes(3), make_job("ok").gpus(2).nodes(2)],
        )
    )
    assert result.waiting_by_id()["huge"].reason is Reason.TOO_BIG
    assert [a.job_id for a in result.admitted] == ["ok"]


def test_a_gang_takes_its_nodes_from_one_rack_first():
    # Inventory interleaves racks a and b; rack b has room for the gang: all pods in b.
    nodes = _two_gpu_nodes(6, racks="ababab")
    snap = snapshot(nodes=nodes, queue=[make_job("g").gpus(2).nodes(3)])
    (admit,) = plan_cycle(snap).admitted
    racks = {n.node.topology for n in nodes if n.node.name in {p for p, _ in admit.pods}}
    assert len(racks) == 1


def test_a_gang_spans_racks_only_when_no_rack_has_enough():
    nodes = _two_gpu_nodes(4, racks="aabb")
    snap = snapshot(nodes=nodes, queue=[make_job("g").gpus(2).nodes(3)])
    (admit,) = plan_cycle(snap).admitted
    assert len(admit.pods) == 3


def test_quotas_count_every_pod_of_a_gang():
    snap = snapshot(
        nodes=_two_gpu_nodes(4),
        queue=[make_job("g").gpus(2).nodes(3)],
        quotas=[TeamQuota("ml", guaranteed_gpus=4, borrowing_allowed=False)],
    )
    result = plan_cycle(snap)
    assert result.admitted == ()
    assert result.waiting[0].reason is Reason.QUOTA


def test_backfill_does_not_delay_a_planned_gang():
    # The gang needs 3 nodes; n0 frees in an hour. A 2-hour job would take n3 past that
    # and delay the gang; a 30-minute one fits in the gap.
    snap = snapshot(
        now=NOW,
        nodes=_two_gpu_nodes(4),
        allocations=[make_alloc("r0").on("n0", 0, 1).started(NOW).runtime(H)],
        queue=[
            make_job("gang").gpus(2).nodes(4).submitted(NOW),
            make_job("long").gpus(2).runtime(2 * H).submitted(NOW + 1),
            make_job("short").gpus(2).runtime(H / 2).submitted(NOW + 2),
        ],
        config=Config(preemption=False, shortest_first=False),
    )
    result = plan_cycle(snap)
    assert "long" not in {a.job_id for a in result.admitted}
    assert "short" in {a.job_id for a in result.admitted}
    assert result.waiting_by_id()["gang"].eta == NOW + H


def test_preemption_takes_a_whole_gang():
    # A borrowed 2-node gang of ml fills n0 and n1; cv (2 guaranteed) needs 2 GPUs: the
    # gang goes as a whole (one Preempt), and both its nodes count as freed.
    snap = snapshot(
        now=NOW,
        nodes=_two_gpu_nodes(2),
        allocations=[
            make_alloc("gang")
            .gang(("n0", (0, 1)), ("n1", (0, 1)))
            .started(NOW - H)
            .runtime(10 * H)
            .borrowed()
        ],
        queue=[
            make_job("cv-a").team("cv").user("carol").gpus(2).submitted(NOW),
            make_job("cv-b").team("cv").user("carol").gpus(2).submitted(NOW + 1),
        ],
        quotas=[TeamQuota("cv", guaranteed_gpus=4), TeamQuota("ml", guaranteed_gpus=0)],
    )
    result = plan_cycle(snap)
    assert [(p.job_id, p.reason) for p in result.preempted] == [("gang", PreemptReason.RECLAIM)]
    waiting = result.waiting_by_id()
    assert waiting["cv-a"].reason is Reason.PREEMPTING
    assert {waiting["cv-a"].planned_node, waiting["cv-b"].planned_node} == {"n0", "n1"}


def test_a_gang_preempts_the_fewest_victims_across_its_nodes():
    # cv's 2-node gang within its guarantee; ml borrows n0 (one job), n1 (two jobs) and n2
    # (one job): the gang stops one job on each of n0 and n2.
    snap = snapshot(
        now=NOW,
        nodes=_two_gpu_nodes(3),
        allocations=[
            make_alloc("a").on("n0", 0, 1).started(NOW - 3 * H).runtime(10 * H).borrowed(),
            make_alloc("b1").on("n1", 0).started(NOW - 60).runtime(10 * H).borrowed(),
            make_alloc("b2").on("n1", 1).started(NOW - 60).runtime(10 * H).borrowed(),
            make_alloc("c").on("n2", 0, 1).started(NOW - 2 * H).runtime(10 * H).borrowed(),
        ],
        queue=[make_job("gang").team("cv").user("carol").gpus(2).nodes(2).submitted(NOW)],
        quotas=[TeamQuota("cv", guaranteed_gpus=4)],
    )
    result = plan_cycle(snap)
    assert sorted(p.job_id for p in result.preempted) == ["a", "c"]
    assert result.waiting_by_id()["gang"].reason is Reason.PREEMPTING


def test_a_running_gang_holds_gpus_on_every_node():
    snap = snapshot(
        now=NOW,
        nodes=_two_gpu_nodes(2),
        allocations=[
            make_alloc("gang").gang(("n0", (0, 1)), ("n1", (0, 1))).started(NOW).runtime(H)
        ],
        queue=[make_job("a").gpus(1).submitted(NOW)],
        config=Config(preemption=False),
    )
    result = plan_cycle(snap)
    assert result.admitted == ()
    assert result.waiting[0].eta == NOW + H


@pytest.mark.parametrize("seed", range(8))
def test_random_cycles_admit_whole_gangs_on_free_gpus(seed):
    # Random clusters, running work (gangs included) and queues: every admitted job gets
    # exactly its pods, on distinct nodes, on GPUs nothing else holds; victims are
    # preemptible; nothing is admitted twice.
    rng = random.Random(seed)
    nodes = [
        make_node(f"n{i}").gpus(rng.choice((2, 4, 8))).topology(rng.choice("ab"))
        for i in range(rng.randint(2, 8))
    ]
    sizes = {n.node.name: len(n.node.gpus) for n in nodes}
    free = {name: list(range(k)) for name, k in sizes.items()}
    allocations = []
    for i in range(rng.randint(0, 6)):
        width, count = rng.choice((1, 2)), rng.choice((1, 1, 2))
        hosts = [n for n, gs in free.items() if len(gs) >= width]
        if len(hosts) < count:
            continue
        pods = []
        for host in rng.sample(hosts, count):
            pods.append((host, tuple(free[host][:width])))
            del free[host][:width]
        alloc = make_alloc(f"r{i}").team(rng.choice(("ml", "cv"))).started(-rng.uniform(0, H))
        alloc = alloc.runtime(rng.choice((H, 5 * H)))
        alloc = alloc.gang(*pods) if count > 1 else alloc.on(*pods[0][:1], *pods[0][1])
        if rng.random() < 0.5:
            alloc = alloc.borrowed()
        if rng.random() < 0.2:
            alloc = alloc.non_preemptible()
        allocations.append(alloc)
    queue = [
        make_job(f"q{i}")
        .team(rng.choice(("ml", "cv")))
        .gpus(rng.choice((1, 2, 4)))
        .nodes(rng.choice((1, 1, 2, 3)))
        .priority(rng.choice((0, 0, 10)))
        .runtime(rng.choice((H / 2, H, 3 * H)))
        .submitted(rng.uniform(-H, 0))
        for i in range(rng.randint(1, 12))
    ]
    snap = snapshot(
        nodes=nodes,
        allocations=allocations,
        queue=queue,
        quotas=[TeamQuota("ml", guaranteed_gpus=4), TeamQuota("cv", guaranteed_gpus=4)],
    )
    jobs = {j.job.id: j.job for j in queue}
    result = plan_cycle(snap)
    held = {(node, g) for a in snap.allocations for node, gpus in a.pods for g in gpus}
    taken: set[tuple[str, int]] = set()
    for admit in result.admitted:
        job = jobs[admit.job_id]
        assert len(admit.pods) == job.nodes
        assert len({node for node, _ in admit.pods}) == job.nodes
        for node, gpus in admit.pods:
            assert len(gpus) == job.gpus and all(g < sizes[node] for g in gpus)
            cells = {(node, g) for g in gpus}
            assert not cells & held and not cells & taken
            taken |= cells
    running = {a.job_id: a for a in snap.allocations}
    assert all(running[p.job_id].preemptible for p in result.preempted)
    assert len({a.job_id for a in result.admitted}) == len(result.admitted)
    assert not {a.job_id for a in result.admitted} & {w.job_id for w in result.waiting}
