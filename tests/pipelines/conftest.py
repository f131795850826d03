"""Pipelines fixtures: the TPC-H warehouse ``demo`` (tests/conftest.py), nodes as rows, each
test's datasets and results in its own directory, and a driver that plays the worker and
the cluster for a run (queries run for real on DuckDB; a container's job is moved along
the scheduler's transitions and its output written where its mount would put it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from django.utils import timezone

from pipelines import states
from pipelines.models import PipelineRun, StepRun
from pipelines.services import datasets, runs
from querygate.services.execution import execute_query
from scheduler import states as job_states
from scheduler.models import Job
from scheduler.services.jobs import transition_job
from tests.scheduler.conftest import make_node

# A container step's behaviour in the driver: write its output (the files a real container
# would write to $KARIMASU_OUTPUT_DIR), and the status its job ends in.
Container = Callable[[StepRun, Path], str]


@pytest.fixture(autouse=True)
def storage(settings, tmp_path) -> Path:
    settings.QUERYGATE_RESULTS_DIR = tmp_path / "query-results"
    settings.PIPELINES_DATASETS_DIR = tmp_path / "datasets"
    return settings.PIPELINES_DATASETS_DIR


@pytest.fixture
def gpu_node(db):
    return make_node("tesla-01", 2)


def copy_inputs(step: StepRun, output: Path) -> str:
    """A preprocessing container: reads its input dataset's Parquet, keeps a column subset,
    writes Parquet (DuckDB standing in for the container's pandas)."""
    inputs = [v for v in step.run.steps.exclude(pk=step.pk) if v.output is not None]
    source = datasets.version_dir(inputs[0].output) / "data.parquet"
    target = output / "part-0.parquet"
    with duckdb.connect(":memory:") as con:
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{source}')) TO '{target}' (FORMAT parquet)"  # noqa: S608 - test paths
        )
    return job_states.SUCCEEDED


def write_model(step: StepRun, output: Path) -> str:
    (output / "model.bin").write_bytes(b"weights")
    return job_states.SUCCEEDED


class Driver:
    def __init__(self, engine: Any, containers: dict[str, Container]) -> None:
        self.engine = engine
        self.containers = containers
        self.now = timezone.now()

    def step(self, run: PipelineRun) -> PipelineRun:
        """One pass: advance, then run queued queries and finish running jobs."""
        runs.advance(run.pk, now=self.now)
        for row in StepRun.objects.filter(run=run, status=states.RUNNING).select_related(
            "query", "job"
        ):
            if row.query is not None and row.query.status == "queued":
                demo = row.query.warehouse.name == "demo"  # the session's TPC-H engine
                execute_query(row.query.pk, engine=self.engine if demo else None)
            if row.job is not None and row.job.status == job_states.QUEUED:
                self._run_job(row)
        self.now += timedelta(seconds=60)
        return PipelineRun.objects.get(pk=run.pk)

    def _run_job(self, row: StepRun) -> None:
        assert row.job is not None
        job = Job.objects.get(pk=row.job.pk)
        start, end = self.now, self.now + timedelta(minutes=30)
        job = transition_job(job, job_states.ADMITTED, now=start)
        job = transition_job(job, job_states.RUNNING, now=start, started_at=start)
        end_status = self.containers[row.name](row, datasets.staging_dir(row))
        transition_job(job, end_status, now=end, finished_at=end)

    def finish(self, run: PipelineRun, *, passes: int = 20) -> PipelineRun:
        for _ in range(passes):
            run = self.step(run)
            if run.status in states.RUN_FINAL:
                return run
        return run


@pytest.fixture
def driver(duckdb_engine) -> Callable[[dict[str, Container]], Driver]:
    def make(containers: dict[str, Container]) -> Driver:
        return Driver(duckdb_engine, containers)

    return make


FEATURES_SQL = """
SELECT c_custkey, c_mktsegment, count(o_orderkey) AS orders, sum(o_totalprice) AS spent
FROM customer JOIN orders ON o_custkey = c_custkey
GROUP BY c_custkey, c_mktsegment
"""


def three_steps(**overrides: Any) -> dict[str, Any]:
    steps = [
        {"name": "features", "kind": "query", "warehouse": "demo", "sql": FEATURES_SQL,
         "dataset": "churn_features"},
        {"name": "prep", "kind": "container", "image": "python:3.11-slim",
         "command": ["python", "prep.py"], "inputs": ["features"], "dataset": "churn_prepped",
         "cpu_millis": 1000, "memory_mb": 1024},
        {"name": "train", "kind": "container", "image": "pytorch/pytorch:2.4.0-cuda12.1",
         "inputs": ["prep"], "gpus": 1, "dataset": "churn_model"},
    ]  # fmt: skip
    for step in steps:
        step.update(overrides.get(step["name"], {}))
    return {"steps": steps}


def now() -> datetime:
    return timezone.now()
