"""Pipelines from Python: define the DAG with a small builder, submit, run and watch it::

    from karimasu_client import Karimasu, Pipeline

    p = Pipeline("churn", team="vision", schedule="0 3 * * *")
    features = p.query("features", warehouse="demo", dataset="churn_features", sql=\"\"\"
        SELECT c_custkey, count(*) AS orders FROM orders JOIN customer ON ...
        GROUP BY c_custkey\"\"\")
    prep = p.container("prep", image="python:3.11", command=["python", "prep.py"],
                       inputs=[features])
    train = p.container("train", image="pytorch/pytorch:2.4.0", inputs=[prep], gpus=1,
                        retries=2)

    kms = Karimasu()
    kms.pipelines.save(p)            # the gate judges every query step now
    run = kms.pipelines.run(p)       # a run of the saved definition
    run = kms.pipelines.wait(run["id"])   # prints step states as they change

The definition is plain JSON (``p.to_dict()``): the same document ``POST
/api/v1/pipelines/`` takes, so nothing is compiled and nothing is hidden. A container step
finds its inputs at ``$KARIMASU_INPUT_<DATASET>`` and writes its output to
``$KARIMASU_OUTPUT_DIR``.
"""

from __future__ import annotations

import builtins
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from karimasu_client import Karimasu

RUN_FINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Step:
    """A step of a :class:`Pipeline`; pass it in another step's ``inputs`` or ``after``."""

    name: str
    spec: dict[str, Any]


@dataclass
class Pipeline:
    name: str
    team: str
    schedule: str = ""
    overlap: str = "skip"
    description: str = ""
    steps: list[Step] = field(default_factory=list)

    def _add(self, name: str, spec: dict[str, Any]) -> Step:
        if any(s.name == name for s in self.steps):
            raise ValueError(f"a step named {name!r} already exists")
        step = Step(name, {"name": name, **{k: v for k, v in spec.items() if v is not None}})
        self.steps.append(step)
        return step

    def query(
        self,
        name: str,
        *,
        warehouse: str,
        sql: str,
        dataset: str | None = None,
        after: Sequence[Step] = (),
        retries: int = 0,
        acknowledge_warnings: bool = False,
    ) -> Step:
        """A query step: ``sql`` through the gate, its result a version of ``dataset``."""
        return self._add(
            name,
            {
                "kind": "query",
                "warehouse": warehouse,
                "sql": sql,
                "dataset": dataset,
                "after": [s.name for s in after] or None,
                "retries": retries,
                "acknowledge_warnings": acknowledge_warnings or None,
            },
        )

    def container(
        self,
        name: str,
        *,
        image: str,
        inputs: Sequence[Step] = (),
        after: Sequence[Step] = (),
        dataset: str | None = None,
        retries: int = 0,
        **job: Any,
    ) -> Step:
        """A container step: a job (``job`` fields as for ``kms.jobs.submit``: command, args,
        env, gpus, cpu_millis, memory_mb, max_runtime_s...) reading ``inputs``' datasets."""
        return self._add(
            name,
            {
                "kind": "container",
                "image": image,
                "inputs": [s.name for s in inputs] or None,
                "after": [s.name for s in after] or None,
                "dataset": dataset,
                "retries": retries,
                **job,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """The definition, as the API takes it."""
        return {"steps": [dict(s.spec) for s in self.steps]}

    def payload(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "team": self.team,
            "schedule": self.schedule,
            "overlap": self.overlap,
            "description": self.description,
            "definition": self.to_dict(),
        }


class Pipelines:
    """``kms.pipelines``: save, run, watch, cancel and resume pipelines; list datasets."""

    def __init__(self, client: Karimasu) -> None:
        self.client = client

    def save(self, pipeline: Pipeline) -> dict[str, Any]:
        """Create or replace the pipeline (by team and name); refused with the gate's
        findings if a query step would be refused."""
        return self.client.call("POST", "/api/v1/pipelines/", json=pipeline.payload())

    def list(self) -> list[dict[str, Any]]:
        page = self.client.request("GET", "/api/v1/pipelines/")
        return list(page["results"]) if isinstance(page, dict) else list(page)

    def _id(self, pipeline: Pipeline | int) -> int:
        if isinstance(pipeline, int):
            return pipeline
        for row in self.list():
            if row["name"] == pipeline.name and row["team"] == pipeline.team:
                return int(row["id"])
        raise LookupError(f"pipeline {pipeline.team}/{pipeline.name} is not saved")

    def run(self, pipeline: Pipeline | int) -> dict[str, Any]:
        """Start a run of the saved definition (save first when it changed)."""
        return self.client.call("POST", f"/api/v1/pipelines/{self._id(pipeline)}/run/", json={})

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self.client.call("GET", f"/api/v1/pipeline-runs/{run_id}/")

    def cancel(self, run_id: int) -> dict[str, Any]:
        return self.client.call("POST", f"/api/v1/pipeline-runs/{run_id}/cancel/", json={})

    def resume(self, run_id: int) -> dict[str, Any]:
        """Run a failed run on from its failed steps (what succeeded is kept)."""
        return self.client.call("POST", f"/api/v1/pipeline-runs/{run_id}/resume/", json={})

    def wait(
        self,
        run_id: int,
        *,
        timeout: float = 3600.0,
        poll: float = 2.0,
        out: TextIO | None = sys.stdout,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll until the run ends, writing each step's state when it changes to ``out``
        (None: quiet); the final run. ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while True:
            run = self.get_run(run_id)
            for step in run["steps"]:
                if seen.get(step["name"]) != step["status"] and out is not None:
                    note = f" ({step['message']})" if step.get("message") else ""
                    out.write(f"[run {run_id}] {step['name']}: {step['status']}{note}\n")
                seen[step["name"]] = step["status"]
            if run["status"] in RUN_FINAL:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {run['status']} after {timeout} s")
            sleep(poll)

    def datasets(self) -> builtins.list[dict[str, Any]]:
        page = self.client.request("GET", "/api/v1/datasets/")
        return list(page["results"]) if isinstance(page, dict) else list(page)

    def lineage(self, dataset_id: int, version: int | None = None) -> dict[str, Any]:
        params = {"version": version} if version is not None else None
        return self.client.call("GET", f"/api/v1/datasets/{dataset_id}/lineage/", params=params)
