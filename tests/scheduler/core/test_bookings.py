"""Bookings and backfill: holders only during the window, backfill only ahead of it, and the
head's planned start never delayed; releasing ended and unused bookings."""

from __future__ import annotations

import pytest

from scheduler.core import Config, Reason, ReleaseReservation, plan_cycle
from tests.scheduler.core.builders import (
    H,
    make_alloc,
    make_booking,
    make_job,
    make_node,
    snapshot,
)

NOW = 100 * H
# Bookings in these cases began ten minutes ago: within the no-show allowance (30 min).
TWO_GPUS = [make_node("n1").gpus(2)]


def bob_booking(start: float, end: float):
    return make_booking("b").on("n1", 0, 1).window(start, end).user("bob")


@pytest.mark.parametrize(
    ("queue", "booking", "want_admitted", "want_reason", "want_eta"),
    [
        pytest.param(
            make_job("a").user("alice"), bob_booking(NOW - 600, NOW + 2 * H),
            False, Reason.RESERVED, NOW + 2 * H,
            id="during bob's booking alice's job waits until it ends",
        ),
        pytest.param(
            make_job("a").user("bob"), bob_booking(NOW - 600, NOW + 2 * H), True, None, None,
            id="during his booking bob's job runs",
        ),
        pytest.param(
            make_job("a").user("bob").runtime(3 * H), bob_booking(NOW - 600, NOW + 2 * H),
            False, Reason.RESERVED, NOW + 2 * H,
            id="the holder's job may not run past the booking's end",
        ),
        pytest.param(
            make_job("a").user("carol").team("cv"),
            bob_booking(NOW - 600, NOW + 2 * H).user(None).team("cv"), True, None, None,
            id="a team booking serves every member of the team",
        ),
        pytest.param(
            make_job("a").user("alice").runtime(H), bob_booking(NOW + 2 * H, NOW + 4 * H),
            True, None, None,
            id="backfill: alice's one-hour job ends before the booking starts",
        ),
        pytest.param(
            make_job("a").user("alice").runtime(3 * H), bob_booking(NOW + 2 * H, NOW + 4 * H),
            False, Reason.RESERVED, NOW + 4 * H,
            id="no backfill: a three-hour job would run into the booking",
        ),
    ],
)  # fmt: skip
def test_booking_window(queue, booking, want_admitted, want_reason, want_eta):
    result = plan_cycle(snapshot(now=NOW, nodes=TWO_GPUS, queue=[queue], bookings=[booking]))
    assert bool(result.admitted) == want_admitted
    if not want_admitted:
        (w,) = result.waiting
        assert (w.reason, w.eta) == (want_reason, want_eta)


def _head_scenario(config: Config | None = None):
    """n1 has 2 GPUs, GPU 0 busy for another hour. The head needs both GPUs (planned start:
    in an hour); behind it a 2-hour job would delay that start, a 30-minute one would not."""
    return snapshot(
        now=NOW,
        nodes=TWO_GPUS,
        allocations=[make_alloc("r").on("n1", 0).started(NOW - H).runtime(2 * H)],
        queue=[
            make_job("head").gpus(2).submitted(1),
            make_job("long").runtime(2 * H).submitted(2),
            make_job("short").runtime(H / 2).submitted(3),
        ],
        config=config,
    )


def test_backfill_never_delays_the_heads_planned_start():
    result = plan_cycle(_head_scenario(Config(shortest_first=False)))
    assert [a.job_id for a in result.admitted] == ["short"]
    waiting = result.waiting_by_id()
    assert (waiting["head"].reason, waiting["head"].eta) == (Reason.CAPACITY, NOW + H)
    assert waiting["long"].reason is Reason.RESERVED
    assert waiting["long"].eta == NOW + 2 * H  # after the head's run


def test_without_backfill_nothing_passes_the_head():
    result = plan_cycle(
        _head_scenario(Config(backfill=False, fair_share=False, shortest_first=False))
    )
    assert result.admitted == ()
    assert [w.reason for w in result.waiting] == [Reason.CAPACITY, Reason.BEHIND, Reason.BEHIND]


@pytest.mark.parametrize(
    ("booking", "allocations", "foreign", "want_released"),
    [
        pytest.param(bob_booking(NOW - 3 * H, NOW), [], False, [("b", "ended")],
                     id="a booking that is over is released"),
        pytest.param(bob_booking(NOW - H, NOW + H), [], False, [("b", "no-show")],
                     id="an hour in and nobody uses it: no-show"),
        pytest.param(bob_booking(NOW - H, NOW + H),
                     [make_alloc("r").user("bob").on("n1", 1).started(NOW - H)], False, [],
                     id="the holder runs a job on it: kept"),
        pytest.param(bob_booking(NOW - H, NOW + H), [], True, [],
                     id="a process outside Karimasu on its GPU (the holder by hand): kept"),
        pytest.param(bob_booking(NOW - 10 * 60, NOW + H), [], False, [],
                     id="ten minutes in: still within the no-show allowance"),
    ],
)  # fmt: skip
def test_release(booking, allocations, foreign, want_released):
    node = make_node("n1").gpus(2)
    if foreign:
        node = node.foreign(0)
    result = plan_cycle(
        snapshot(now=NOW, nodes=[node], bookings=[booking], allocations=allocations)
    )
    want = tuple(ReleaseReservation(i, r) for i, r in want_released)
    assert result.released == want


def test_released_no_show_frees_the_gpus_in_the_same_cycle():
    result = plan_cycle(
        snapshot(
            now=NOW,
            nodes=TWO_GPUS,
            queue=[make_job("a").user("alice")],
            bookings=[bob_booking(NOW - H, NOW + H)],
        )
    )
    assert [a.job_id for a in result.admitted] == ["a"]
