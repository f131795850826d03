"""The trace simulator on small slices of the real traces: invariants, not numbers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from itertools import pairwise

import pytest

from scheduler.core import Config, Packing, TeamQuota
from scheduler.sim.simulator import POLICIES, replay
from scheduler.sim.traces import (
    ALIBABA_NODES,
    ALIBABA_PODS,
    PHILLY,
    TraceError,
    TraceJob,
    load_alibaba_nodes,
    load_alibaba_pods,
    load_philly,
    uniform_nodes,
)

pytestmark = pytest.mark.skipif(
    not (ALIBABA_PODS.exists() and PHILLY.exists()), reason="traces not mounted"
)


def _check_invariants(jobs: list[TraceJob], metrics, rec) -> None:
    # Every replayable job finished.
    assert metrics.jobs + metrics.dropped == len(jobs)
    assert set(rec.finish) <= {j.id for j in jobs}
    # No job started before it was submitted.
    submit = {j.id: j.submit_s for j in jobs}
    for job_id, _, _, start, end in rec.intervals:
        assert submit[job_id] <= start <= end
    # No GPU held by two jobs at once.
    by_gpu: dict[tuple[str, int], list[tuple[float, float, str]]] = defaultdict(list)
    for job_id, node, gpus, start, end in rec.intervals:
        for g in gpus:
            by_gpu[(node, g)].append((start, end, job_id))
    for spans in by_gpu.values():
        spans.sort()
        for (_, end, a), (start, _, b) in pairwise(spans):
            assert end <= start, f"{a} and {b} overlap"


def _compressed(jobs: list[TraceJob], factor: float) -> list[TraceJob]:
    return [replace(j, submit_s=j.submit_s / factor) for j in jobs]


@pytest.mark.parametrize("policy", ["fifo", "fifo-backfill", "default"])
@pytest.mark.parametrize("packing", [Packing.BEST_FIT, Packing.WORST_FIT])
def test_alibaba_slice(policy, packing):
    # 400 pods on every 64th node (~20 nodes), arrivals 20x denser: the queue fills up.
    jobs = _compressed(load_alibaba_pods(limit=400), 20)
    nodes = load_alibaba_nodes(every=64)
    metrics, rec = replay(jobs, nodes, replace(POLICIES[policy], packing=packing))
    _check_invariants(jobs, metrics, rec)
    assert metrics.jobs > 350
    assert 0.0 < metrics.gpu_utilization <= 1.0


def test_philly_slice_with_quotas_preempts_and_keeps_invariants():
    # Two virtual clusters on 2 x 8 GPUs, arrivals 50x denser, each team guaranteed 8 GPUs:
    # borrowed work gets reclaimed, so preemption paths run.
    jobs = load_philly(clusters=frozenset({"6214e9", "11cb48"}), limit=300)
    jobs = [j for j in _compressed(jobs, 50) if j.gpus <= 8]
    quotas = {t: TeamQuota(t, guaranteed_gpus=8) for t in ("6214e9", "11cb48")}
    metrics, rec = replay(jobs, uniform_nodes(2, 8), POLICIES["default"], quotas=quotas)
    _check_invariants(jobs, metrics, rec)
    assert metrics.preemptions > 0
    assert 0.0 < metrics.jain_fairness <= 1.0


def test_jobs_the_cluster_cannot_hold_are_dropped_not_stuck():
    jobs = [
        TraceJob("big", "t", "u", 16, 0.0, 10.0),
        TraceJob("ok", "t", "u", 8, 0.0, 10.0),
    ]
    metrics, rec = replay(jobs, uniform_nodes(1, 8), Config())
    assert (metrics.jobs, metrics.dropped) == (1, 1)
    assert metrics.dropped_reasons == {"too-big": 1}
    assert rec.finish == {"ok": 10.0}


def test_jobs_wider_than_a_node_run_as_gangs_on_whole_nodes():
    # A 16-GPU job on 3 x 8 GPUs: two pods of 8 on two nodes, started and ended together;
    # a 4-GPU job running on one node until 10 s delays it.
    jobs = [
        TraceJob("small", "t", "u", 4, 0.0, 10.0),
        TraceJob("wide", "t", "u", 16, 1.0, 100.0),
        TraceJob("small2", "t", "u", 4, 2.0, 10.0),
    ]
    metrics, rec = replay(jobs, uniform_nodes(3, 8), Config(), runtime_error=0.0)
    assert (metrics.jobs, metrics.dropped, metrics.multi_node_jobs) == (3, 0, 1)
    wide = [(node, gpus, s, e) for j, node, gpus, s, e in rec.intervals if j == "wide"]
    assert len(wide) == 2 and len({node for node, *_ in wide}) == 2
    assert all(len(gpus) == 8 and (s, e) == (1.0, 101.0) for _, gpus, s, e in wide)
    _check_invariants(jobs, metrics, rec)


@pytest.mark.parametrize("policy", ["fifo", "fifo-backfill", "default"])
def test_philly_multi_node_jobs_are_all_replayed(policy):
    # ee9e8c has jobs of up to 128 GPUs: on 16 x 8 GPUs every job fits, none is dropped.
    jobs = _compressed(load_philly(clusters=frozenset({"ee9e8c"}), limit=250), 4)
    assert max(j.gpus for j in jobs) > 8
    quotas = {"ee9e8c": TeamQuota("ee9e8c", guaranteed_gpus=64)}
    metrics, rec = replay(jobs, uniform_nodes(16, 8), POLICIES[policy], quotas=quotas)
    assert metrics.dropped == 0
    assert metrics.multi_node_jobs == sum(1 for j in jobs if j.gpus > 8)
    assert metrics.jobs == len(jobs)
    _check_invariants(jobs, metrics, rec)


def test_fifo_makes_a_small_job_wait_behind_a_blocked_big_one_backfill_does_not():
    # One 8-GPU node; a 4-GPU job runs 100 s; an 8-GPU job waits for it; a 1-GPU 10 s job
    # arrives next. FIFO holds the small job; backfill runs it in the gap.
    jobs = [
        TraceJob("a", "t", "u", 4, 0.0, 100.0),
        TraceJob("big", "t", "u", 8, 1.0, 100.0),
        TraceJob("small", "t", "u", 1, 2.0, 10.0),
    ]
    nodes = uniform_nodes(1, 8)
    _, fifo = replay(jobs, nodes, POLICIES["fifo"], runtime_error=0.0)
    _, easy = replay(jobs, nodes, POLICIES["fifo-backfill"], runtime_error=0.0)
    assert fifo.first_start["small"] == 200.0
    assert easy.first_start["small"] == 2.0
    assert fifo.first_start["big"] == easy.first_start["big"] == 100.0


def test_loaders_follow_the_readme():
    pods = load_alibaba_pods(limit=50)
    assert pods[0].submit_s == 0.0
    assert all(j.gpus in (0, 1, 2, 4, 8) for j in pods)  # fractional shares round up to 1
    nodes = load_alibaba_nodes()
    assert len(nodes) == 1213
    philly = load_philly(limit=10)
    assert [j.submit_s for j in philly] == sorted(j.submit_s for j in philly)
    with pytest.raises(TraceError):
        load_alibaba_pods(ALIBABA_NODES.with_name("alibaba_v2023_openb_pod_list_multigpu50.csv"))


@pytest.mark.parametrize("policy", ["fifo", "fifo-backfill", "default"])
def test_replays_skip_eta_only_plans_without_changing_results(policy):
    # POLICIES set plan_etas=False for speed; the replay must measure what the full
    # production cycle (every plan made) would. GPU indices within a node may differ (the
    # "GPUs without plans first" tie-break sees fewer plans), so intervals are compared
    # without them.
    jobs = load_philly(PHILLY, clusters=frozenset({"103959", "ee9e8c"}), limit=400)
    nodes = uniform_nodes(4, 8)
    lean, lean_rec = replay(jobs, nodes, POLICIES[policy])
    full, full_rec = replay(jobs, nodes, replace(POLICIES[policy], plan_etas=True))
    timing = {"cycle_ms_p50", "cycle_ms_p99", "decisions_per_s"}
    assert {k: v for k, v in lean.as_dict().items() if k not in timing} == {
        k: v for k, v in full.as_dict().items() if k not in timing
    }

    def without_gpus(rec):
        return sorted((j, node, len(g), s, e) for j, node, g, s, e in rec.intervals)

    assert without_gpus(lean_rec) == without_gpus(full_rec)
