"""Fluent builders for snapshot rows (Kueue's wrappers): ``make_job("a").gpus(4).team("cv")``.

Defaults: team "ml", user "alice", 1 GPU, one hour, submitted at 0; nodes have 8 healthy
"A100" GPUs; allocations start at 0 and run an hour. ``H`` is an hour in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from scheduler.core import (
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

H = 3600.0


class JobBuilder:
    def __init__(self, job_id: str) -> None:
        self.job = QueuedJob(job_id, "ml", "alice", 1, H, 0.0)

    def _with(self, **kw: Any) -> JobBuilder:
        self.job = replace(self.job, **kw)
        return self

    def gpus(self, n: int) -> JobBuilder:
        return self._with(gpus=n)

    def team(self, t: str) -> JobBuilder:
        return self._with(team=t)

    def user(self, u: str) -> JobBuilder:
        return self._with(user=u)

    def runtime(self, s: float) -> JobBuilder:
        return self._with(max_runtime_s=s)

    def submitted(self, t: float) -> JobBuilder:
        return self._with(submitted_at=t)

    def priority(self, p: int) -> JobBuilder:
        return self._with(priority=p)

    def models(self, *m: str) -> JobBuilder:
        return self._with(models=frozenset(m))

    def cpu(self, milli: int) -> JobBuilder:
        return self._with(cpu_milli=milli)

    def memory(self, mib: int) -> JobBuilder:
        return self._with(memory_mib=mib)

    def sweep(self, sweep_id: str, parallelism: int) -> JobBuilder:
        return self._with(sweep_id=sweep_id, sweep_parallelism=parallelism)

    def non_preemptible(self) -> JobBuilder:
        return self._with(preemptible=False)

    def nodes(self, n: int) -> JobBuilder:
        """A gang of ``n`` pods, ``gpus`` each."""
        return self._with(nodes=n)

    def build(self) -> QueuedJob:
        return self.job


class NodeBuilder:
    def __init__(self, name: str) -> None:
        self.node = Node(name, "A100", tuple(Gpu(i, f"{name}-{i}") for i in range(8)))

    def _with(self, **kw: Any) -> NodeBuilder:
        self.node = replace(self.node, **kw)
        return self

    def model(self, m: str) -> NodeBuilder:
        return self._with(gpu_model=m)

    def gpus(self, n: int) -> NodeBuilder:
        return self._with(gpus=tuple(Gpu(i, f"{self.node.name}-{i}") for i in range(n)))

    def unhealthy(self, *indices: int) -> NodeBuilder:
        gpus = tuple(replace(g, healthy=g.index not in indices) for g in self.node.gpus)
        return self._with(gpus=gpus)

    def foreign(self, *indices: int) -> NodeBuilder:
        gpus = tuple(replace(g, foreign_busy=g.index in indices) for g in self.node.gpus)
        return self._with(gpus=gpus)

    def cordoned(self) -> NodeBuilder:
        return self._with(cordoned=True)

    def not_ready(self) -> NodeBuilder:
        return self._with(ready=False)

    def cpu(self, milli: int) -> NodeBuilder:
        return self._with(cpu_milli=milli)

    def memory(self, mib: int) -> NodeBuilder:
        return self._with(memory_mib=mib)

    def topology(self, group: str) -> NodeBuilder:
        return self._with(topology=group)

    def build(self) -> Node:
        return self.node


class AllocBuilder:
    def __init__(self, job_id: str) -> None:
        self.alloc = Allocation(job_id, "ml", "alice", "n1", (0,), 0.0, H)

    def _with(self, **kw: Any) -> AllocBuilder:
        self.alloc = replace(self.alloc, **kw)
        return self

    def on(self, node: str, *gpus: int) -> AllocBuilder:
        return self._with(node=node, gpu_indices=tuple(gpus))

    def gang(self, *pods: tuple[str, tuple[int, ...]]) -> AllocBuilder:
        """A running gang: every pod's (node, GPU indices), pod 0 first."""
        return self._with(node=pods[0][0], gpu_indices=pods[0][1], placements=tuple(pods))

    def team(self, t: str) -> AllocBuilder:
        return self._with(team=t)

    def user(self, u: str) -> AllocBuilder:
        return self._with(user=u)

    def started(self, t: float) -> AllocBuilder:
        return self._with(started_at=t)

    def runtime(self, s: float) -> AllocBuilder:
        return self._with(max_runtime_s=s)

    def priority(self, p: int) -> AllocBuilder:
        return self._with(priority=p)

    def borrowed(self) -> AllocBuilder:
        return self._with(borrowed=True)

    def non_preemptible(self) -> AllocBuilder:
        return self._with(preemptible=False)

    def sweep(self, sweep_id: str) -> AllocBuilder:
        return self._with(sweep_id=sweep_id)

    def cpu(self, milli: int) -> AllocBuilder:
        return self._with(cpu_milli=milli)

    def terminating(self, until: float, for_job: str | None = None) -> AllocBuilder:
        """Told to stop, holding its GPUs until ``until``; ``for_job``: its preemptor."""
        return self._with(terminating_until=until, preempted_for=for_job)

    def build(self) -> Allocation:
        return self.alloc


class BookingBuilder:
    def __init__(self, booking_id: str) -> None:
        self.booking = Booking(booking_id, "n1", (0,), 0.0, H, user="bob")

    def _with(self, **kw: Any) -> BookingBuilder:
        self.booking = replace(self.booking, **kw)
        return self

    def on(self, node: str, *gpus: int) -> BookingBuilder:
        return self._with(node=node, gpu_indices=tuple(gpus))

    def window(self, start: float, end: float) -> BookingBuilder:
        return self._with(start=start, end=end)

    def user(self, u: str | None) -> BookingBuilder:
        return self._with(user=u)

    def team(self, t: str | None) -> BookingBuilder:
        return self._with(team=t)

    def build(self) -> Booking:
        return self.booking


def make_job(job_id: str = "j1") -> JobBuilder:
    return JobBuilder(job_id)


def make_node(name: str = "n1") -> NodeBuilder:
    return NodeBuilder(name)


def make_alloc(job_id: str = "r1") -> AllocBuilder:
    return AllocBuilder(job_id)


def make_booking(booking_id: str = "b1") -> BookingBuilder:
    return BookingBuilder(booking_id)


def snapshot(
    *,
    now: float = 0.0,
    nodes: list[NodeBuilder] | None = None,
    queue: Sequence[JobBuilder] = (),
    allocations: Sequence[AllocBuilder] = (),
    bookings: Sequence[BookingBuilder] = (),
    usage: Sequence[UsageRecord] = (),
    quotas: Sequence[TeamQuota] = (),
    user_caps: dict[str, int] | None = None,
    user_weights: dict[str, float] | None = None,
    config: Config | None = None,
) -> Snapshot:
    """A ``Snapshot`` from builders; one default node "n1" when ``nodes`` is None."""
    return Snapshot(
        now=now,
        nodes=tuple(n.build() for n in (nodes if nodes is not None else [make_node()])),
        queue=tuple(j.build() for j in queue),
        allocations=tuple(a.build() for a in allocations),
        bookings=tuple(b.build() for b in bookings),
        usage=tuple(usage),
        quotas={q.team: q for q in quotas},
        user_gpu_caps=user_caps or {},
        user_share_weights=user_weights or {},
        config=config or Config(),
    )
