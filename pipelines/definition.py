"""A pipeline definition: parsed, validated and ordered. Pure; no Django.

A definition is JSON (the API, the SDK's ``to_dict``)::

    {"steps": [
        {"name": "features", "kind": "query", "warehouse": "tpch", "sql": "SELECT ...",
         "dataset": "churn_features"},
        {"name": "prep", "kind": "container", "image": "python:3.11", "command": [...],
         "inputs": ["features"], "dataset": "churn_prepped", "cpu_millis": 1000},
        {"name": "train", "kind": "container", "image": "...", "inputs": ["prep"], "gpus": 1}
    ]}

A **query step** runs its SQL through the query gate and materialises the result as a
version of its dataset. A **container step** runs as a job through the scheduler, with the
datasets of the steps named in ``inputs`` mounted read-only, and registers what it writes
to ``$KARIMASU_OUTPUT_DIR`` as a version of its dataset. ``after`` orders steps without
passing data. Every error names the step and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

QUERY = "query"
CONTAINER = "container"
KINDS = (QUERY, CONTAINER)

MAX_STEPS = 50
MAX_RETRIES = 5
MAX_SQL_CHARS = 100_000
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
DATASET = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # a table name the gate can resolve


def gettext_noop(text: str) -> str:
    """Marks an English template for ``makemessages`` (this layer has no Django): the
    portal translates it when it reports the error (``pipelines.services.runs``)."""
    return text


class DefinitionError(ValueError):
    """A definition that cannot run; ``field`` is a path like ``steps[2].inputs``.
    ``template`` (English, ``%(name)s`` placeholders) and ``params`` let the portal say it
    in the reader's language; ``message`` is the English."""

    def __init__(self, field_path: str, template: str, **params: Any) -> None:
        message = template % params if params else template
        super().__init__(f"{field_path}: {message}")
        self.field = field_path
        self.message = message
        self.template = template
        self.params = params


@dataclass(frozen=True)
class Step:
    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    dataset: str = ""  # the dataset this step's output becomes a version of
    retries: int = 0
    retry_delay_s: int = 30
    # query steps
    warehouse: str = ""
    sql: str = ""
    acknowledge_warnings: bool = False  # run despite the gate's warnings (decided when written)
    # container steps: the fields of a job (scheduler.services.submission.JobRequest)
    job: Mapping[str, Any] = field(default_factory=dict)

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.inputs, *self.after)))


@dataclass(frozen=True)
class Definition:
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def downstream(self, name: str) -> set[str]:
        """Every step that depends on ``name``, directly or not."""
        out: set[str] = set()
        frontier = {name}
        while frontier:
            frontier = {s.name for s in self.steps if set(s.upstream) & frontier} - out
            out |= frontier
        return out


_JOB_FIELDS = {
    "image": str,
    "command": list,
    "args": list,
    "env": dict,
    "gpus": int,
    "gpu_models": list,
    "cpu_millis": int,
    "memory_mb": int,
    "max_runtime_s": int,
    "priority_class": str,
    "preemptible": bool,
    "mounts": list,
    "annotations": dict,
    "secrets": dict,
}
_COMMON = {"name", "kind", "inputs", "after", "dataset", "retries", "retry_delay_s"}
_QUERY_FIELDS = _COMMON | {"warehouse", "sql", "acknowledge_warnings"}
_CONTAINER_FIELDS = _COMMON | set(_JOB_FIELDS)


def parse(data: Any) -> Definition:
    """Validate ``data`` and return the definition with its steps in a run order.

    >>> d = parse({"steps": [
    ...     {"name": "b", "kind": "container", "image": "x", "inputs": ["a"]},
    ...     {"name": "a", "kind": "query", "warehouse": "w", "sql": "SELECT 1"}]})
    >>> [s.name for s in d.steps]
    ['a', 'b']
    >>> parse({"steps": [{"name": "a", "kind": "query", "warehouse": "w", "sql": "SELECT 1",
    ...     "after": ["a"]}]})
    Traceback (most recent call last):
    ...
    pipelines.definition.DefinitionError: steps[0].after: a step cannot depend on itself
    """
    if not isinstance(data, Mapping):
        raise DefinitionError("definition", gettext_noop("must be an object with a list of steps"))
    unknown = sorted(set(data) - {"steps"})
    if unknown:
        raise DefinitionError(
            "definition", gettext_noop("unknown field(s): %(fields)s"), fields=", ".join(unknown)
        )
    raw = data.get("steps")
    if not isinstance(raw, list) or not raw:
        raise DefinitionError("steps", gettext_noop("must be a non-empty list"))
    if len(raw) > MAX_STEPS:
        raise DefinitionError("steps", gettext_noop("at most %(count)s steps"), count=MAX_STEPS)
    steps = [_step(i, item) for i, item in enumerate(raw)]
    names = [s.name for s in steps]
    for i, step in enumerate(steps):
        if names.index(step.name) != i:
            raise DefinitionError(
                f"steps[{i}].name", gettext_noop("%(name)s is used twice"), name=repr(step.name)
            )
    _check_edges(steps)
    datasets: dict[str, str] = {}
    for i, step in enumerate(steps):
        if step.dataset and step.dataset in datasets:
            other = datasets[step.dataset]
            raise DefinitionError(
                f"steps[{i}].dataset",
                gettext_noop("%(dataset)s is also written by step %(step)s"),
                dataset=repr(step.dataset),
                step=repr(other),
            )
        if step.dataset:
            datasets[step.dataset] = step.name
    return Definition(tuple(_ordered(steps)))


def _step(i: int, item: Any) -> Step:
    where = f"steps[{i}]"
    if not isinstance(item, Mapping):
        raise DefinitionError(where, gettext_noop("must be an object"))
    kind = item.get("kind")
    if kind not in KINDS:
        raise DefinitionError(
            f"{where}.kind", gettext_noop("must be one of %(kinds)s"), kinds=", ".join(KINDS)
        )
    allowed = _QUERY_FIELDS if kind == QUERY else _CONTAINER_FIELDS
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise DefinitionError(
            where,
            gettext_noop("unknown field(s) for a %(kind)s step: %(fields)s"),
            kind=kind,
            fields=", ".join(unknown),
        )
    name = item.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise DefinitionError(
            f"{where}.name", gettext_noop("lowercase letters, digits, - and _ (max 63)")
        )
    common: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "inputs": _names(f"{where}.inputs", item.get("inputs", [])),
        "after": _names(f"{where}.after", item.get("after", [])),
        "dataset": _dataset(f"{where}.dataset", item.get("dataset", "")),
        "retries": _bounded(f"{where}.retries", item.get("retries", 0), 0, MAX_RETRIES),
        "retry_delay_s": _bounded(f"{where}.retry_delay_s", item.get("retry_delay_s", 30), 0, 3600),
    }
    if kind == QUERY:
        return _query_step(where, item, common)
    return _container_step(where, item, common)


def _query_step(where: str, item: Mapping[str, Any], common: dict[str, Any]) -> Step:
    warehouse, sql = item.get("warehouse"), item.get("sql")
    if not isinstance(warehouse, str) or not warehouse:
        raise DefinitionError(f"{where}.warehouse", gettext_noop("a warehouse name is required"))
    if not isinstance(sql, str) or not sql.strip():
        raise DefinitionError(f"{where}.sql", gettext_noop("the SQL is required"))
    if len(sql) > MAX_SQL_CHARS:
        raise DefinitionError(
            f"{where}.sql", gettext_noop("at most %(count)s characters"), count=MAX_SQL_CHARS
        )
    if common["inputs"]:
        raise DefinitionError(
            f"{where}.inputs",
            gettext_noop("a query step reads tables: name datasets in its SQL instead"),
        )
    if not common["dataset"]:
        common["dataset"] = common["name"].replace("-", "_")
    ack = item.get("acknowledge_warnings", False)
    if not isinstance(ack, bool):
        raise DefinitionError(
            f"{where}.acknowledge_warnings", gettext_noop("must be true or false")
        )
    return Step(**common, warehouse=warehouse, sql=sql, acknowledge_warnings=ack)


def _container_step(where: str, item: Mapping[str, Any], common: dict[str, Any]) -> Step:
    job: dict[str, Any] = {}
    for key, kind in _JOB_FIELDS.items():
        if key not in item:
            continue
        value = item[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise DefinitionError(f"{where}.{key}", gettext_noop("must be an integer"))
        if not isinstance(value, kind):
            raise DefinitionError(
                f"{where}.{key}", gettext_noop("must be a %(type)s"), type=kind.__name__
            )
        job[key] = value
    if not isinstance(job.get("image"), str) or not job["image"].strip():
        raise DefinitionError(f"{where}.image", gettext_noop("an image is required"))
    if not common["dataset"]:
        common["dataset"] = common["name"].replace("-", "_")
    return Step(**common, job=job)


def _names(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DefinitionError(where, gettext_noop("must be a list of step names"))
    return tuple(dict.fromkeys(value))


def _dataset(where: str, value: Any) -> str:
    if value in ("", None):
        return ""
    if not isinstance(value, str) or not DATASET.match(value):
        raise DefinitionError(
            where, gettext_noop("lowercase letters, digits and _, starting with a letter")
        )
    return value


def _bounded(where: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DefinitionError(
            where, gettext_noop("must be an integer from %(low)s to %(high)s"), low=low, high=high
        )
    return value


def _check_edges(steps: Sequence[Step]) -> None:
    names = {s.name for s in steps}
    for i, step in enumerate(steps):
        for key, values in (("inputs", step.inputs), ("after", step.after)):
            for name in values:
                if name == step.name:
                    raise DefinitionError(
                        f"steps[{i}].{key}", gettext_noop("a step cannot depend on itself")
                    )
                if name not in names:
                    raise DefinitionError(
                        f"steps[{i}].{key}",
                        gettext_noop("no step is named %(name)s"),
                        name=repr(name),
                    )


def _ordered(steps: Sequence[Step]) -> list[Step]:
    """Kahn's algorithm, ties in the order written; a cycle is an error naming its steps."""
    done: set[str] = set()
    order: list[Step] = []
    pending = list(steps)
    while pending:
        ready = [s for s in pending if set(s.upstream) <= done]
        if not ready:
            cycle = ", ".join(sorted(s.name for s in pending))
            raise DefinitionError(
                "steps",
                gettext_noop("the steps %(steps)s depend on each other (a cycle)"),
                steps=cycle,
            )
        for step in ready:
            order.append(step)
            done.add(step.name)
        pending = [s for s in pending if s.name not in done]
    return order


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(step: Step, *, identity: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """What makes a step's output reusable: the step as defined, plus ``identity`` (for a
    query step its SQL fingerprint and the warehouse's catalog version; for a container step
    the image) and the cache keys of the versions it reads.

    >>> s = Step(name="a", kind="query", warehouse="w", sql="SELECT 1")
    >>> k = cache_key(s, identity={"fingerprint": "f", "catalog_version": 1}, inputs={})
    >>> k == cache_key(s, identity={"fingerprint": "f", "catalog_version": 1}, inputs={})
    True
    >>> k == cache_key(s, identity={"fingerprint": "f", "catalog_version": 2}, inputs={})
    False
    """
    payload = {
        "kind": step.kind,
        "dataset": step.dataset,
        "warehouse": step.warehouse,
        "job": dict(step.job),
        "identity": dict(identity),
        "inputs": dict(sorted(inputs.items())),
    }
    if step.kind == QUERY:
        payload["sql"] = ""  # the fingerprint stands for it (formatting does not matter)
    return hashlib.sha256(canonical(payload).encode()).hexdigest()
