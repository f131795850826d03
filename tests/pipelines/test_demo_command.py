"""``manage.py demo_pipeline`` as ``make run`` calls it: on a fresh database, before the
demo's emulator runs, so no node is known yet (the container steps are judged against the
cluster's nodes when the pipeline is saved)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from pipelines.models import Pipeline
from scheduler.models import Node

pytestmark = pytest.mark.django_db


def test_the_demo_pipeline_is_made_on_a_fresh_database(alice, demo, settings) -> None:
    settings.PIPELINES_DATASETS_MOUNT = "datasets"  # what make run sets (DEMO_ENV)
    settings.KARIMASU_JOB_ANNOTATION_PREFIXES = ["emulator.karimasu.io"]
    assert not Node.objects.exists()
    call_command("demo_pipeline")
    pipeline = Pipeline.objects.get(name="churn", team__slug="vision")
    assert pipeline.schedule == "0 3 * * *"
    assert Node.objects.filter(gone_at__isnull=True).exists()  # the demo cluster's nodes
    call_command("demo_pipeline")  # idempotent
    assert Pipeline.objects.filter(name="churn").count() == 1
