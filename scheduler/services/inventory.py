"""Keep `Node` and `Gpu` rows in step with the cluster's Node objects, including what pods
Karimasu did not create hold on each node (``Node.foreign_*``, subtracted by the scheduler:
`outside_gpu_indices` says which GPUs count as theirs)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from django.db import transaction

from scheduler.cluster.backend import ClusterBackend, NodeInfo
from scheduler.models import Gpu, Node, NodeEvent

log = logging.getLogger("karimasu.inventory")


@dataclass
class InventoryReport:
    nodes: int = 0
    appeared: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def sync_inventory(backend: ClusterBackend, *, now: datetime) -> InventoryReport:
    """Upsert every node the cluster reports; mark the missing ones gone (rows are kept).

    Raises ClusterUnavailable without touching the database when the cluster can't be read:
    an outage must not look like every node leaving.
    """
    infos = backend.inventory()
    report = InventoryReport(nodes=len(infos))
    with transaction.atomic():
        existing = {n.name: n for n in Node.objects.select_for_update()}
        for info in infos:
            node = existing.pop(info.name, None)
            if node is None:
                node = _create(info, now)
                report.appeared.append(info.name)
            elif _update(node, info, now):
                report.changed.append(info.name)
            _sync_gpus(node, info)
        for node in existing.values():
            if node.gone_at is None:
                Node.objects.filter(pk=node.pk).update(gone_at=now, ready=False)
                NodeEvent.objects.create(
                    node=node,
                    kind=NodeEvent.Kind.GONE,
                    at=now,
                    detail="no longer reported by the cluster",
                )
                report.gone.append(node.name)
                log.warning("inventory.node_gone node=%s", node.name)
    return report


def _fields(info: NodeInfo) -> dict[str, object]:
    return {
        "gpu_model": info.gpu_model,
        "gpu_memory_mb": info.gpu_memory_mb,
        "gpu_capacity": info.gpu_capacity,
        "gpu_allocatable": info.gpu_allocatable,
        "cpu_allocatable_millis": info.cpu_allocatable_millis,
        "memory_allocatable_mb": info.memory_allocatable_mb,
        "ready": info.ready,
        "cordoned": info.cordoned,
        "taints": info.taints,
        "labels": info.labels,
        "extended_resources": info.extended,
        "foreign_gpus": info.foreign.gpus,
        "foreign_cpu_millis": info.foreign.cpu_millis,
        "foreign_memory_mb": info.foreign.memory_mb,
        "foreign_pods": list(info.foreign.pods),
        "daemon_cpu_millis": info.foreign.daemon_cpu_millis,
        "daemon_memory_mb": info.foreign.daemon_memory_mb,
        "gpu_allocation": info.gpu_allocation,
    }


def _create(info: NodeInfo, now: datetime) -> Node:
    node = Node.objects.create(name=info.name, first_seen_at=now, last_seen_at=now, **_fields(info))
    NodeEvent.objects.create(
        node=node,
        kind=NodeEvent.Kind.APPEARED,
        at=now,
        detail=f"{info.gpu_capacity} x {info.gpu_model or 'no GPU'}",
    )
    log.info("inventory.node_appeared node=%s gpus=%s", info.name, info.gpu_capacity)
    return node


def _update(node: Node, info: NodeInfo, now: datetime) -> bool:
    """Apply `info`, recording an event per meaningful change. True if anything changed."""
    events: list[tuple[str, str]] = []
    if node.gone_at is not None:
        events.append((NodeEvent.Kind.RETURNED, ""))
    if node.ready != info.ready:
        events.append((NodeEvent.Kind.READY if info.ready else NodeEvent.Kind.NOT_READY, ""))
    if node.cordoned != info.cordoned:
        events.append((NodeEvent.Kind.CORDONED if info.cordoned else NodeEvent.Kind.UNCORDONED, ""))
    if (node.gpu_capacity, node.gpu_allocatable) != (info.gpu_capacity, info.gpu_allocatable):
        events.append(
            (
                NodeEvent.Kind.CAPACITY_CHANGED,
                f"{node.gpu_allocatable}/{node.gpu_capacity} -> "
                f"{info.gpu_allocatable}/{info.gpu_capacity}",
            )
        )
    changed = bool(events) or any(getattr(node, k) != v for k, v in _fields(info).items())
    for key, value in _fields(info).items():
        setattr(node, key, value)
    node.last_seen_at = now
    node.gone_at = None
    node.save()
    for kind, detail in events:
        NodeEvent.objects.create(node=node, kind=kind, at=now, detail=detail)
        log.info("inventory.node_%s node=%s %s", kind, node.name, detail)
    return changed


def _sync_gpus(node: Node, info: NodeInfo) -> None:
    """One row per physical GPU index; indices beyond the capacity are marked absent."""
    have = {g.index: g for g in node.gpus.all()}
    for index in range(info.gpu_capacity):
        gpu = have.get(index)
        # The DRA driver's UUID, until the node agent reports one (the agent's wins).
        published = info.gpu_uuids.get(index, "")
        if gpu is None:
            Gpu.objects.create(
                node=node,
                index=index,
                model=info.gpu_model,
                memory_mb=info.gpu_memory_mb,
                uuid=published,
            )
        elif not gpu.present or gpu.model != info.gpu_model or (published and not gpu.uuid):
            Gpu.objects.filter(pk=gpu.pk).update(
                present=True,
                model=info.gpu_model,
                memory_mb=info.gpu_memory_mb,
                uuid=gpu.uuid or published,
            )
    Gpu.objects.filter(node=node, index__gte=info.gpu_capacity, present=True).update(present=False)


class GpuCounts(Protocol):
    """What ``outside_gpu_indices`` reads of a node (a ``Node``, or ``NodeCounts``)."""

    @property
    def foreign_gpus(self) -> int: ...
    @property
    def gpu_capacity(self) -> int: ...
    @property
    def gpu_allocatable(self) -> int: ...


class NodeCounts(NamedTuple):
    """A node's GPU counts read as plain values (no model instance per node)."""

    foreign_gpus: int
    gpu_capacity: int
    gpu_allocatable: int


def outside_gpu_indices(
    node: GpuCounts, present: list[int], held: set[int], prefer: frozenset[int] = frozenset()
) -> set[int]:
    """The GPUs of ``node`` that count as in use outside Karimasu: as many as foreign pods
    request, plus those the device plugin does not offer (capacity above allocatable).

    The cluster does not say which device a foreign pod got, so the count matters, not the
    index: they are taken among GPUs no Karimasu job holds (``held``), those telemetry saw
    busy with foreign processes (``prefer``) first, then the highest indices.
    """
    count = node.foreign_gpus + max(0, node.gpu_capacity - node.gpu_allocatable)
    if count <= 0:
        return set()
    free = [i for i in present if i not in held]
    return set(sorted(free, key=lambda i: (i not in prefer, -i))[:count])
