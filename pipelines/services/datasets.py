"""Datasets: versions published whole or not at all, found again by cache key, purged.

Layout under ``PIPELINES_DATASETS_DIR`` (default ``VAR_DIR/datasets``)::

    <team>/<dataset>/v<N>/            a version (data.parquet for a query step, or whatever
                                      a container step wrote)
    .staging/step-<id>-a<attempt>/    where a step's output is written first

A step writes into its staging directory; :func:`publish` inspects it, renames it to the
version's directory (one ``rename``: atomic on one file system) and only then commits the
``DatasetVersion`` row. A reader only ever follows a row, so it sees a whole version or
none; a directory without a row (a crash between the rename and the commit) is debris that
:func:`purge` removes.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext_noop

from pipelines.models import Dataset, DatasetVersion, StepRun
from portal.accounts.models import Team
from portal.errors import InvalidRequest
from portal.phrases import phrase

log = logging.getLogger("karimasu.pipelines")

STAGING = ".staging"


def datasets_dir() -> Path:
    return Path(getattr(settings, "PIPELINES_DATASETS_DIR", settings.VAR_DIR / "datasets"))


def staging_dir(step: StepRun) -> Path:
    return datasets_dir() / STAGING / f"step-{step.pk}-a{step.attempt}"


def version_dir(version: DatasetVersion) -> Path:
    return datasets_dir() / version.path


def _parquet_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.parquet") if p.is_file())


def inspect(directory: Path) -> dict[str, Any]:
    """Format, schema, rows, bytes and files of a directory about to become a version: all
    Parquet (one schema read by DuckDB), or plain files (a model, a report)."""
    files = [p for p in directory.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    parquet = _parquet_files(directory)
    if not files:
        raise InvalidRequest(
            phrase(gettext_noop("The step wrote no output file.")), code="empty_output"
        )
    if len(parquet) != len(files):
        return {
            "format": "files",
            "schema": [],
            "row_count": None,
            "bytes": size,
            "files": len(files),
        }
    with duckdb.connect(":memory:") as con:
        names = [str(p) for p in parquet]
        try:
            described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [names]).fetchall()
            rows = con.execute("SELECT count(*) FROM read_parquet(?)", [names]).fetchone()
        except duckdb.Error as error:
            raise InvalidRequest(
                phrase(
                    gettext_noop("The step's Parquet output cannot be read: %(error)s"),
                    error=str(error),
                ),
                code="bad_output",
            ) from error
    return {
        "format": "parquet",
        "schema": [{"name": str(r[0]), "type": str(r[1])} for r in described],
        "row_count": int(rows[0]) if rows else 0,
        "bytes": size,
        "files": len(files),
    }


def publish(
    step: StepRun,
    staging: Path,
    *,
    team: Team,
    name: str,
    cache_key: str,
    inputs: Iterable[DatasetVersion] = (),
    query: Any = None,
    job: Any = None,
    now: datetime,
) -> DatasetVersion:
    """Turn ``staging`` into the next version of ``team``'s dataset ``name``."""
    facts = inspect(staging)
    owner = step.run.created_by
    with transaction.atomic():
        dataset, _ = Dataset.objects.get_or_create(
            team=team, name=name, defaults={"owner": owner, "created_at": now}
        )
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        last = dataset.versions.order_by("-version").values_list("version", flat=True).first()
        number = (last or 0) + 1
        relative = Path(team.slug) / name / f"v{number}"
        target = datasets_dir() / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # debris of a crash between rename and commit: never a row
            shutil.rmtree(target)
        os.rename(staging, target)
        version = DatasetVersion.objects.create(
            dataset=dataset,
            version=number,
            path=str(relative),
            cache_key=cache_key,
            produced_by=step,
            query=query,
            job=job,
            created_at=now,
            expires_at=now + timedelta(days=dataset.retention_days),
            **facts,
        )
        version.inputs.set(list(inputs))
    log.info("dataset.published %s v%s rows=%s", dataset, number, facts["row_count"])
    return version


def cached_version(team: Team, name: str, cache_key: str) -> DatasetVersion | None:
    """The newest version of the dataset made from the same inputs, still on disk."""
    for version in DatasetVersion.objects.filter(
        dataset__team=team, dataset__name=name, cache_key=cache_key
    ).order_by("-version")[:3]:
        if version_dir(version).is_dir():
            return version
    return None


def lineage(version: DatasetVersion, *, depth: int = 10) -> dict[str, Any]:
    """The version, what made it (query SQL or job image) and, recursively, its inputs."""
    step = version.produced_by
    made_by: dict[str, Any] = {}
    if version.query_id is not None and version.query is not None:
        made_by = {"kind": "query", "query_id": version.query_id, "sql": version.query.sql}
    elif version.job_id is not None and version.job is not None:
        made_by = {"kind": "container", "job_id": version.job_id, "image": version.job.image}
    node: dict[str, Any] = {
        "dataset": f"{version.dataset.team.slug}.{version.dataset.name}",
        "version": version.version,
        "made_by": made_by,
        "step": step.name if step else None,
        "run": step.run_id if step else None,
        "inputs": [],
    }
    if depth > 0:
        node["inputs"] = [lineage(v, depth=depth - 1) for v in version.inputs.all()]
    return node


def purge(*, now: datetime) -> dict[str, int]:
    """Expired versions (never a dataset's newest, never one a running step reads), and
    directories no row names (crash debris, staging left by a dead attempt after a day)."""
    removed = 0
    for version in DatasetVersion.objects.filter(expires_at__lt=now).select_related("dataset"):
        newest = version.dataset.versions.order_by("-version").values_list("pk", flat=True)[0]
        if version.pk == newest:
            continue
        shutil.rmtree(version_dir(version), ignore_errors=True)
        version.delete()
        removed += 1
    debris = 0
    root = datasets_dir()
    known = set(DatasetVersion.objects.values_list("path", flat=True))
    cutoff = (now - timedelta(days=1)).timestamp()
    for candidate in root.glob("*/*/v*"):
        relative = str(candidate.relative_to(root))
        if relative not in known and candidate.stat().st_mtime < cutoff:
            shutil.rmtree(candidate, ignore_errors=True)
            debris += 1
    for candidate in (root / STAGING).glob("step-*"):
        if candidate.stat().st_mtime < cutoff:
            shutil.rmtree(candidate, ignore_errors=True)
            debris += 1
    return {"versions": removed, "debris": debris}
