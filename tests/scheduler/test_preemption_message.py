"""A preemption victim is told who took the GPUs and why, in words it can act on (not a job
number whose page it cannot see)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from scheduler.core.decisions import Preempt
from scheduler.models import Job
from scheduler.services.cycle import _preempted_message

pytestmark = pytest.mark.django_db


def test_the_victim_learns_the_team_the_size_and_the_reason(alice, nlp):
    taker = Job.objects.create(
        name="secret-project",
        owner=alice.user,
        team=nlp,
        image="x:1",
        gpus=4,
        max_runtime_s=600,
        status="queued",
        submitted_at=timezone.now(),
    )
    message = _preempted_message(Preempt("7", "reclaim", str(taker.pk), 60), {taker.pk: taker})
    assert "4-GPU job of team nlp" in message and "guaranteed" in message
    assert f"job {taker.pk}" not in message and "secret-project" not in message
    other = _preempted_message(Preempt("7", "priority", "999", 60), {})
    assert "another job" in other and "higher priority" in other
