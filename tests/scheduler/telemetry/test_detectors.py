"""Signals with a controlled `now`: idle, foreign use, stale node, unhealthy GPU."""

from __future__ import annotations

from datetime import timedelta

from nodeagent.batch import parse_batch
from scheduler.models import Gpu, Reservation, ReservationSlot
from scheduler.telemetry import detectors
from scheduler.telemetry.services import ingest_batch
from tests.scheduler.telemetry.conftest import T0, batch, gpu_data, make_node, reading


def feed(node, minutes: int, util0: float, util1: float, start=T0, **gpu1_extra) -> None:
    readings = [
        reading(
            start + timedelta(seconds=10 * i),
            [gpu_data(0, util=util0), gpu_data(1, util=util1, **gpu1_extra)],
        )
        for i in range(minutes * 6 + 1)
    ]
    ingest_batch(node, parse_batch(batch(readings)), now=start)


def refs(items) -> list[tuple[str, int]]:
    return [(r.node, r.index) for r in items]


def test_idle_needs_the_whole_window_under_threshold(node):
    feed(node, 20, util0=3.0, util1=60.0)
    now = T0 + timedelta(minutes=20)
    assert refs(detectors.idle_gpus(now=now, window=timedelta(minutes=15))) == [("gpu-01", 0)]
    assert detectors.idle_gpus(now=now, window=timedelta(minutes=15), threshold=2.0) == []
    # A window reaching before the first sample is not covered: not called idle.
    assert detectors.idle_gpus(now=now, window=timedelta(minutes=30)) == []


def test_one_busy_moment_breaks_idleness(node):
    feed(node, 10, util0=1.0, util1=1.0)
    ingest_batch(
        node,
        parse_batch(
            batch([reading(T0 + timedelta(minutes=5, seconds=5), [gpu_data(0, util=30.0)])])
        ),
        now=T0,
    )
    now = T0 + timedelta(minutes=10)
    assert refs(detectors.idle_gpus(now=now, window=timedelta(minutes=10))) == [("gpu-01", 1)]


def test_foreign_use_from_fresh_readings_only(node):
    feed(node, 1, 50.0, 50.0, processes=[{"pid": 4, "foreign": True}])
    assert refs(detectors.foreign_gpus(now=T0 + timedelta(minutes=1))) == [("gpu-01", 1)]
    assert detectors.foreign_gpus(now=T0 + timedelta(minutes=10)) == []


def test_stale_node_after_two_minutes_without_a_sample(node):
    other = make_node("gpu-02")
    feed(node, 1, 1.0, 1.0)
    feed(other, 1, 1.0, 1.0, start=T0 + timedelta(minutes=2))
    now = T0 + timedelta(minutes=3, seconds=30)
    assert detectors.stale_nodes(now=now) == ["gpu-01"]
    assert detectors.stale_nodes(now=T0 + timedelta(minutes=2)) == []


def test_unhealthy_gpu(node):
    feed(node, 0, 1.0, 1.0, healthy=False, error="GPU is lost")
    assert refs(detectors.unhealthy_gpus(now=T0)) == [("gpu-01", 1)]
    assert Gpu.objects.get(node=node, index=1).healthy is False


def test_reservation_is_idle_for_the_idle_booking_logic(node, alice, vision):
    feed(node, 20, util0=0.0, util1=80.0)
    booking = Reservation.objects.create(
        holder=alice.user,
        team=vision,
        node=node,
        start=T0,
        end=T0 + timedelta(hours=2),
        created_at=T0,
        status="active",
    )
    slot = ReservationSlot.objects.create(
        reservation=booking,
        gpu=Gpu.objects.get(node=node, index=0),
        start=booking.start,
        end=booking.end,
    )
    since, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=20)
    assert detectors.reservation_is_idle(booking, since, until) is True
    ReservationSlot.objects.create(
        reservation=booking,
        gpu=Gpu.objects.get(node=node, index=1),
        start=booking.start,
        end=booking.end,
    )
    assert detectors.reservation_is_idle(booking, since, until) is False
    assert slot.pk


def test_session_is_idle_reads_an_on_demand_sessions_job_gpus(node, alice, vision):
    from scheduler import states
    from scheduler.models import Job, Session, WorkspaceImage

    feed(node, 20, util0=0.0, util1=80.0)
    job = Job.objects.create(
        name="session-ws",
        owner=alice.user,
        team=vision,
        image="ws:1",
        max_runtime_s=3600,
        submitted_at=T0,
        started_at=T0,
        status=states.RUNNING,
        node=node,
        gpu_indices=[0],
        gpus=1,
    )
    workspace = WorkspaceImage.objects.create(name="ws", image="ws:1")
    session = Session.objects.create(
        job=job, owner=alice.user, workspace=workspace, port=8888, created_at=T0
    )
    since, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=20)
    assert detectors.session_is_idle(session, since, until) is True
    Job.objects.filter(pk=job.pk).update(gpu_indices=[0, 1], gpus=2)
    session.job.refresh_from_db()
    assert detectors.session_is_idle(session, since, until) is False
    Job.objects.filter(pk=job.pk).update(node=None, gpu_indices=[])
    session.job.refresh_from_db()
    assert detectors.session_is_idle(session, since, until) is False
