"""Idle auto-release end to end: a booked GPU with nothing on it reads 0% in the simulated
telemetry source, the portal ingests it, the booking gets a notice, then is reclaimed, and
the queue gets the GPUs. One controlled clock (the emulator's) drives everything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nodeagent.agent import Agent
from nodeagent.batch import parse_batch
from nodeagent.simulated import SimulatedSource
from scheduler import states
from scheduler.models import Job, Node, ReservationStatus, TeamPolicy
from scheduler.services.cycle import run_cycle
from scheduler.services.idle import check_idle_bookings
from scheduler.services.reservations import reserve_gpus
from scheduler.telemetry.detectors import reservation_is_idle
from scheduler.telemetry.services import ingest_batch
from tests.scheduler.cluster.conftest import ONE_NODE

pytestmark = pytest.mark.django_db


def clock_of(emulator) -> datetime:
    return datetime.fromtimestamp(emulator.clock.now(), tz=UTC)


def book_both_gpus(holder, team, emulator):
    """The holder books tesla-01's two GPUs for 8 hours from the emulator's now."""
    TeamPolicy.objects.create(
        team=team, max_booking_hours=None, max_days_ahead=None, max_gpus_per_user=None
    )
    node = Node.objects.get(name="tesla-01")
    start = clock_of(emulator)
    booking = reserve_gpus(
        holder.user,
        team=team,
        node=node,
        gpu_indices=[0, 1],
        start=start,
        end=start + timedelta(hours=8),
        now=start,
    )
    return node, start, booking


def minutes(emulator, node, count):
    """Each simulated minute: the agent reads the simulated GPUs, the portal ingests the
    batch and checks idle bookings. Yields (minute, idle report)."""
    source = SimulatedSource("tesla-01", kubeconfig=str(emulator.kubeconfig_path))
    sent: list[dict] = []
    agent = Agent(source, "tesla-01", sent.append, clock=lambda: clock_of(emulator))
    try:
        for minute in range(1, count + 1):
            emulator.advance(60, step=60)
            agent.tick()
            ingest_batch(node, parse_batch(sent.pop()), now=clock_of(emulator))
            yield minute, check_idle_bookings(now=clock_of(emulator), is_idle=reservation_is_idle)
    finally:
        source.close()


@pytest.mark.nodes_file(ONE_NODE)
def test_idle_booking_is_noticed_reclaimed_and_its_gpus_go_to_the_queue(
    alice, charlie, synced, backend, emulator, vision, nlp
):
    node, start, booking = book_both_gpus(alice, vision, emulator)
    # Another team's job: the booking's GPUs are not for it while the booking lasts.
    job = Job.objects.create(
        name="waits",
        owner=charlie.user,
        team=nlp,
        image="x:1",
        gpus=2,
        max_runtime_s=3600,
        submitted_at=start,
    )
    events = {}
    for minute, report in minutes(emulator, node, 62):
        for kind in ("noticed", "reclaimed"):
            if getattr(report, kind):
                events.setdefault(kind, minute)
        if minute == 50:
            run_cycle(None, now=clock_of(emulator))
            job.refresh_from_db()
            assert (job.status, job.reason) == (states.QUEUED, "reserved")

    # Grace 30 min + a 15-min idle window: the notice; one more window: the reclaim.
    assert events == {"noticed": 45, "reclaimed": 60}
    booking.refresh_from_db()
    assert booking.status == ReservationStatus.RECLAIMED
    assert booking.waste_gpu_hours == pytest.approx(2 * 30 / 60)

    run_cycle(None, now=clock_of(emulator))
    job.refresh_from_db()
    assert (job.status, job.node, sorted(job.gpu_indices)) == (states.ADMITTED, node, [0, 1])


@pytest.mark.nodes_file(ONE_NODE)
def test_a_booking_whose_gpus_work_is_kept(alice, synced, backend, emulator, vision):
    """The holder runs a job on the booked GPUs: utilization is high, nothing happens."""
    node, start, booking = book_both_gpus(alice, vision, emulator)
    Job.objects.create(
        name="uses-it",
        owner=alice.user,
        team=vision,
        image="x:1",
        gpus=2,
        max_runtime_s=7200,
        submitted_at=start,
        status=states.ADMITTED,
        node=node,
        gpu_indices=[0, 1],
        admitted_at=start,
        annotations={
            "karimasu.io/sim-duration-seconds": "7200",
            "karimasu.io/sim-gpu-utilization": "80",
        },
    )
    from scheduler.services.reconcile import reconcile

    reconcile(backend, now=start)  # submits it to the emulator
    for _, report in minutes(emulator, node, 62):
        assert report.noticed == report.reclaimed == []
    booking.refresh_from_db()
    assert booking.status in (ReservationStatus.BOOKED, ReservationStatus.ACTIVE)
