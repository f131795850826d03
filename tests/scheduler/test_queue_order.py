"""The line of waiting jobs (``QueueOrder``, issue 17): one row written by the cycle, read
by every page and API that shows a queued job's place. Written only when it changed, read
in one query, never stale after another writer or a rollback."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler import messages, states
from scheduler.models import Job, QueueOrder, QueuePlace, attach_queue_places
from scheduler.models.jobs import _pack
from tests.scheduler.conftest import create_job

pytestmark = pytest.mark.django_db


def test_a_line_is_written_once_and_read_back():
    now = timezone.now()
    assert QueueOrder.record(now, [7, 3, 9], [0, 1, 1])
    line = QueueOrder.places()
    assert dict(line) == {7: QueuePlace(1, 0), 3: QueuePlace(2, 1), 9: QueuePlace(3, 1)}
    # The same line again: nothing written.
    with CaptureQueriesContext(connection) as queries:
        assert not QueueOrder.record(now, [7, 3, 9], [0, 1, 1])
    assert not [q for q in queries if q["sql"].startswith(("UPDATE", "INSERT"))]
    assert QueueOrder.record(now, [3, 7, 9], [0, 1, 2])
    assert QueueOrder.places()[7] == QueuePlace(2, 1)


def test_a_rolled_back_line_is_written_again():
    now = timezone.now()
    QueueOrder.record(now, [1, 2], [0, 1])
    with transaction.atomic():
        QueueOrder.record(now, [2, 1], [0, 1])
        transaction.set_rollback(True)
    # This process wrote [2, 1] last, but it is not what is stored: writing it again must.
    assert QueueOrder.places()[1].position == 1
    assert QueueOrder.record(now, [2, 1], [0, 1])
    assert QueueOrder.places()[1].position == 2


def test_a_line_written_elsewhere_is_read_in_one_query():
    QueueOrder.record(timezone.now(), [1, 2], [0, 1])
    assert QueueOrder.places()[2].position == 2
    # Another process (another cycle worker) writes a new line.
    QueueOrder.objects.filter(pk=1).update(token="elsewhere", line=_pack([2, 1], [0, 0]))
    with CaptureQueriesContext(connection) as queries:
        assert QueueOrder.places()[2].position == 1
        assert QueueOrder.places()[1].position == 2
    assert len(queries) == 2  # one per call, whether the line is new to it or not


def test_a_torn_line_gives_no_places_rather_than_wrong_ones(alice, vision):
    job = create_job(alice, vision)
    QueueOrder.record(timezone.now(), [job.pk, 6], [0, 1])
    QueueOrder.objects.filter(pk=1).update(token="torn", line=_pack([job.pk, 6], [0, 1])[:-8])
    assert len(QueueOrder.places()) == 0
    assert job.queue_position is None


def test_no_line_yet_means_no_place(alice, vision):
    job = create_job(alice, vision)
    assert QueueOrder.places() == {}
    assert job.queue_position is None and job.shown_message == job.message


def test_a_job_behind_others_reads_their_count_and_only_while_queued(alice, vision):
    first, job = create_job(alice, vision), create_job(alice, vision)
    Job.objects.filter(pk=job.pk).update(reason="behind", message=messages.WAIT_BEHIND_OTHERS)
    QueueOrder.record(timezone.now(), [first.pk, job.pk], [0, 4])
    job.refresh_from_db()
    assert (job.queue_position, job.shown_message) == (2, "behind 4 jobs of higher rank")
    # Cancelled since the cycle: no place, and the stored text is shown as it is.
    Job.objects.filter(pk=job.pk).update(status=states.CANCELLED)
    job.refresh_from_db()
    assert job.queue_position is None
    assert job.shown_message == messages.WAIT_BEHIND_OTHERS
    # A list gets its places in one query, whatever its length.
    jobs = list(Job.objects.filter(pk__in=[first.pk, job.pk]).order_by("pk"))
    with CaptureQueriesContext(connection) as queries:
        attach_queue_places(jobs)
        assert [j.queue_position for j in jobs] == [1, None]
    assert len(queries) == 1
