"""Placement: model constraints, unschedulable nodes and GPUs, CPU/memory, packing."""

from __future__ import annotations

import pytest

from scheduler.core import Config, Packing, Reason, plan_cycle
from tests.scheduler.core.builders import H, make_alloc, make_booking, make_job, make_node, snapshot

LONG = 10 * H


@pytest.mark.parametrize(
    ("nodes", "queue", "allocations", "want_admitted", "want_reasons"),
    [
        pytest.param(
            [make_node("n1").model("A100"), make_node("n2").model("H100")],
            [make_job("a").models("H100")], [], {"a": ("n2", (0,))}, {},
            id="acceptable model: only the H100 node",
        ),
        pytest.param(
            [make_node("n1").model("A100")], [make_job("a").models("H100", "V100")], [],
            {}, {"a": Reason.NO_MODEL},
            id="no node with an acceptable model",
        ),
        pytest.param(
            [make_node("n1"), make_node("n2").gpus(4)], [make_job("a").gpus(9)], [],
            {}, {"a": Reason.TOO_BIG},
            id="more GPUs than any node has: too big",
        ),
        pytest.param(
            [make_node("n1").cpu(8000)], [make_job("a").cpu(16000)], [],
            {}, {"a": Reason.TOO_BIG},
            id="more CPU than any node has: too big",
        ),
        pytest.param(
            [make_node("n1").cordoned(), make_node("n2")], [make_job("a")], [],
            {"a": ("n2", (0,))}, {},
            id="cordoned node skipped",
        ),
        pytest.param(
            [make_node("n1").not_ready(), make_node("n2")], [make_job("a")], [],
            {"a": ("n2", (0,))}, {},
            id="node not ready skipped",
        ),
        pytest.param(
            [make_node("n1").cordoned()], [make_job("a")], [], {}, {"a": Reason.NO_NODES},
            id="only a cordoned node: it waits for one that takes work",
        ),
        pytest.param(
            [make_node("n1").unhealthy(0, 1)], [make_job("a").gpus(2)], [],
            {"a": ("n1", (2, 3))}, {},
            id="unhealthy GPUs skipped",
        ),
        pytest.param(
            [make_node("n1").foreign(0, 2)], [make_job("a").gpus(2)], [],
            {"a": ("n1", (1, 3))}, {},
            id="GPUs busy with foreign processes skipped",
        ),
        pytest.param(
            [make_node("n1").gpus(2).foreign(0)], [make_job("a").gpus(2)], [],
            {}, {"a": Reason.TOO_BIG},
            id="a node with a foreign-busy GPU cannot hold a job needing all its GPUs",
        ),
        pytest.param(
            [make_node("n1").cpu(8000), make_node("n2").cpu(8000)], [make_job("a").cpu(4000)],
            [make_alloc("r").on("n1", 0).cpu(6000).runtime(LONG)],
            {"a": ("n2", (0,))}, {},
            id="CPU: n1 has free GPUs but only 2 free cores",
        ),
        pytest.param(
            [make_node("n1").memory(1024), make_node("n2").memory(65536)],
            [make_job("a").memory(4096)], [], {"a": ("n2", (0,))}, {},
            id="memory: n1 is too small",
        ),
    ],
)  # fmt: skip
def test_placement(nodes, queue, allocations, want_admitted, want_reasons):
    result = plan_cycle(snapshot(nodes=nodes, queue=queue, allocations=allocations))
    assert {a.job_id: (a.node, a.gpu_indices) for a in result.admitted} == want_admitted
    waiting = result.waiting_by_id()
    assert {j: waiting[j].reason for j in want_reasons} == want_reasons


BUSY_N1 = [make_alloc("r").on("n1", 0, 1, 2, 3).runtime(LONG)]


@pytest.mark.parametrize(
    ("packing", "queue", "want_admitted", "want_waiting"),
    [
        pytest.param(
            Packing.BEST_FIT, [make_job("small").gpus(2)], {"small": "n1"}, [],
            id="best-fit: the fuller node, leaving n2 whole",
        ),
        pytest.param(
            Packing.WORST_FIT, [make_job("small").gpus(2)], {"small": "n2"}, [],
            id="worst-fit: the emptier node",
        ),
        pytest.param(
            Packing.BEST_FIT, [make_job("small").gpus(2), make_job("big").gpus(8).submitted(1)],
            {"small": "n1", "big": "n2"}, [],
            id="best-fit keeps a whole node for the 8-GPU job behind",
        ),
        pytest.param(
            Packing.WORST_FIT, [make_job("small").gpus(2), make_job("big").gpus(8).submitted(1)],
            {"small": "n2"}, ["big"],
            id="worst-fit splits n2 and the 8-GPU job waits",
        ),
    ],
)  # fmt: skip
def test_packing(packing, queue, want_admitted, want_waiting):
    result = plan_cycle(
        snapshot(
            nodes=[make_node("n1"), make_node("n2")],
            queue=queue,
            allocations=BUSY_N1,
            config=Config(packing=packing),
        )
    )
    assert {a.job_id: a.node for a in result.admitted} == want_admitted
    assert [w.job_id for w in result.waiting] == want_waiting


def test_gpus_without_bookings_are_chosen_first():
    result = plan_cycle(
        snapshot(
            queue=[make_job("a").gpus(2).runtime(H)],
            bookings=[make_booking("b").on("n1", 0, 1).window(5 * H, 6 * H)],
        )
    )
    assert result.admitted[0].gpu_indices == (2, 3)


def test_static_reasons_say_what_is_missing():
    result = plan_cycle(
        snapshot(queue=[make_job("a").models("H100"), make_job("b").gpus(9).submitted(1)])
    )
    details = [w.detail for w in result.waiting]
    assert details == [
        "no schedulable node has a GPU of model H100",
        "no schedulable node has 9 usable GPUs, 0m CPU and 0 MiB",
    ]


def test_no_schedulable_node_at_all_is_its_own_reason() -> None:
    """With nodes that take no work (or none), a job is not "too big": it waits for one."""
    from scheduler.core.decisions import Reason
    from scheduler.core.placement import static_reason
    from scheduler.core.snapshot import Gpu, Node, QueuedJob

    job = QueuedJob("j", "t", "u", 0, 60.0, 0.0)
    big = QueuedJob("k", "t", "u", 4, 60.0, 0.0)
    node = Node("n1", "A100", tuple(Gpu(i) for i in range(2)))
    assert static_reason([], job) is Reason.NO_NODES
    cordoned = Node("n1", "A100", node.gpus, cordoned=True)
    assert static_reason([cordoned, Node("n2", "A100", (), ready=False)], big) is Reason.NO_NODES
    assert static_reason([node], job) is None
    assert static_reason([node, cordoned], big) is Reason.TOO_BIG
