"""The scheduler's fixed limits (scheduler/limits.py): the services enforce them, and every
entry point (API, page forms, the database) reads the same value.

The submit-time checks the dead ``scheduler.core.validation`` had are the live service's:
unknown models, nodes too small and runtimes out of range are in test_jobs_api.py; here,
the per-job GPU limit and the CPU-only job."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.errors import InvalidRequest
from scheduler.api.jobs import JobRequestSerializer
from scheduler.api.serializers import AvailabilityQuerySerializer, BorrowSerializer
from scheduler.forms import BorrowForm, JobForm
from scheduler.limits import MAX_BOOKING_HOURS, MAX_GPUS, MAX_JOB_GPUS, MIN_BOOKING_HOURS
from scheduler.models import Job
from scheduler.services import submission
from tests.scheduler.conftest import make_node

pytestmark = pytest.mark.django_db


def _request(gpus: int) -> submission.JobRequest:
    return submission.JobRequest(
        name="resnet", image="pytorch/pytorch:2.4", team="vision", max_runtime_s=600, gpus=gpus
    )


def test_a_job_of_max_gpus_fits_a_node_that_size(alice):
    make_node("big-01", MAX_GPUS)
    job = submission.submit_job(alice.user, _request(MAX_GPUS), now=timezone.now())
    assert job.gpus == MAX_GPUS


def test_the_service_refuses_more_than_max_gpus_even_on_a_bigger_node(alice):
    make_node("huge-01", MAX_GPUS * 2)
    with pytest.raises(InvalidRequest) as caught:
        submission.submit_job(alice.user, _request(MAX_GPUS + 1), now=timezone.now())
    assert caught.value.message == f"A job uses 0 to {MAX_GPUS} GPUs on one node."
    assert "gpus" in caught.value.details
    assert not Job.objects.exists()


def test_a_cpu_only_job_is_accepted(alice, nodes):
    job = submission.submit_job(alice.user, _request(0), now=timezone.now())
    assert job.gpus == 0


def test_the_database_refuses_more_than_max_gpus(alice, nodes):
    job = submission.submit_job(alice.user, _request(1), now=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(gpus=MAX_GPUS + 1)


def test_the_api_and_the_forms_read_the_limits_module(alice):
    api_fields = [
        JobRequestSerializer().fields["gpus"],
        BorrowSerializer().fields["gpus"],
        AvailabilityQuerySerializer().fields["gpus"],
    ]
    assert [f.max_value for f in api_fields] == [MAX_GPUS] * 3
    hours = BorrowSerializer().fields["hours"]
    assert (hours.min_value, hours.max_value) == (MIN_BOOKING_HOURS, MAX_BOOKING_HOURS)
    # The pages' inputs get their bounds from the forms.
    job_form, borrow_form = JobForm(user=alice.user), BorrowForm(user=alice.user)
    assert f'max="{MAX_GPUS}"' in str(job_form["gpus"])
    assert f'max="{MAX_GPUS}"' in str(borrow_form["gpus"])
    assert f'max="{MAX_BOOKING_HOURS}"' in str(borrow_form["hours"])


def test_a_multi_node_job_counts_its_gpus_in_all(alice, settings):
    settings.KARIMASU_MAX_JOB_NODES = 16
    for i in range(9):
        make_node(f"big-{i:02}", MAX_GPUS)
    gang = submission.JobRequest(**{**_request(MAX_GPUS).__dict__, "nodes": 8})
    assert submission.submit_job(alice.user, gang, now=timezone.now()).nodes == 8
    gang = submission.JobRequest(**{**_request(MAX_GPUS).__dict__, "nodes": 9})  # 72 GPUs
    with pytest.raises(InvalidRequest) as caught:
        submission.submit_job(alice.user, gang, now=timezone.now())
    assert caught.value.message == (
        f"A job uses at most {MAX_JOB_GPUS} GPUs in all (this one: 9 x {MAX_GPUS})."
    )
    job = Job.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():  # the database holds it too
        Job.objects.filter(pk=job.pk).update(nodes=9)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(nodes=0)


def test_nodes_are_at_most_the_setting_everywhere(alice, nodes, settings):
    settings.KARIMASU_MAX_JOB_NODES = 2
    gang = submission.JobRequest(**{**_request(1).__dict__, "nodes": 3})
    with pytest.raises(InvalidRequest) as caught:
        submission.submit_job(alice.user, gang, now=timezone.now())
    assert caught.value.details == {"nodes": ["A job runs on 1 to 2 nodes."]}
    form = JobForm(user=alice.user)
    assert 'max="2"' in str(form["nodes"])
