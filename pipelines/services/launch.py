"""What a step runs: a query through the gate or a job through the scheduler; the two
kinds' judging, launching, outcome, output and stop, behind one set of functions.

Nothing here bypasses the gate or the scheduler: a query step is ``submit_query`` of the
run's user (analysis, policy, budget, audit, kill), a container step is ``submit_job``
(quotas, fair share, priorities). Datasets reach a container as read-only sub-path mounts
of the datasets volume (``PIPELINES_DATASETS_MOUNT``, an admin's named mount of the same
storage as ``PIPELINES_DATASETS_DIR``); its output goes to a writable mount of its own
staging directory, nothing else of the store.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from pipelines import definition as defs
from pipelines.models import DatasetVersion, PipelineRun, StepRun
from pipelines.services.datasets import datasets_dir, staging_dir
from portal.accounts.models import Team
from portal.errors import InvalidRequest, KarimasuError
from portal.phrases import phrase
from querygate.messages import KILL_REASONS, error_phrase
from querygate.models import Query
from querygate.services.access import access_warehouse_named
from querygate.services.admission import gate_refusal, status_of, submit_query
from querygate.services.analyses import analysis_of, fingerprint
from querygate.services.enforcement import cancel_query
from querygate.services.results import path_of
from querygate.states import ACTIVE as QUERY_ACTIVE
from querygate.states import CANCELLED as QUERY_CANCELLED
from querygate.states import KILLED as QUERY_KILLED
from querygate.states import SUCCEEDED as QUERY_SUCCEEDED
from scheduler import states as job_states
from scheduler.models import Job
from scheduler.services import submission

RUNNING, DONE, FAILED = "running", "done", "failed"
INPUTS_ROOT = "/karimasu/inputs"
OUTPUT_DIR = "/karimasu/output"
DEFAULT_RUNTIME_S = 3600


class Refused(KarimasuError):
    """The gate or the scheduler refused a step before it ran (not retried)."""

    code = "step_refused"


@dataclass
class Launched:
    query: Query | None = None
    job: Job | None = None
    refusal: str = ""  # a ``Phrase`` where the refusal is one


@dataclass
class Outcome:
    state: str
    # A ``Phrase`` (portal.phrases): stored, then shown in each reader's language.
    message: str = ""
    retryable: bool = False
    gpu_hours: float = 0.0
    bytes_scanned: int = 0


def preflight(actor: Any, team: Team, parsed: defs.Definition) -> None:
    """Judge every step now, before anything runs: each query by the gate's analysis (no
    engine call), each container as the scheduler would at submission. ``Refused`` names
    the step and says what the gate or the scheduler says (for SQL, with the gate's line
    and column)."""
    for step in parsed.steps:
        try:
            if step.kind == defs.QUERY:
                _judge_query(actor, team, step)
            else:
                submission.validate(actor, _job_request(team, step, inputs=[], output=None))
        except KarimasuError as error:
            raise refused(step.name, error) from error


def refused(step: str, error: KarimasuError) -> Refused:
    """The step's refusal: the gate's or the scheduler's message, led by the step's name;
    the refusal's own ``code`` and details (line, column, findings) kept in the details."""
    return Refused(
        _("Step %(step)s: %(message)s") % {"step": step, "message": error.message},
        details={**_plain(error.details), "step": step, "code": error.code},
    )


def _plain(details: Any) -> dict[str, Any]:
    return dict(details) if isinstance(details, dict) else {}


def _judge_query(actor: Any, team: Team, step: defs.Step) -> None:
    """The gate's judgement of a query step, raised as the gate's own refusal (one wording:
    ``admission.gate_refusal``)."""
    access = access_warehouse_named(actor, step.warehouse, team.slug)
    report, analysis = analysis_of(access, step.sql, explain=False)
    status = status_of(report, step.acknowledge_warnings)
    refusal = gate_refusal(report, analysis, status, list(report.reasons))
    if refusal is not None:
        raise refusal


def identity(run: PipelineRun, step: defs.Step) -> dict[str, Any]:
    """What the step's output depends on beyond its definition and inputs."""
    if step.kind == defs.QUERY:
        # The SQL's print needs a parse, not the gate's whole analysis: the gate judged the
        # step at preflight and judges it again when the attempt is submitted (the catalog
        # or the policy may have changed in between), never a third time here.
        access = access_warehouse_named(run.created_by, step.warehouse, run.pipeline.team.slug)
        return {
            "fingerprint": fingerprint(step.sql, access.warehouse.sql_dialect),
            "catalog_version": access.warehouse.catalog_version,
        }
    return {"image": str(step.job.get("image", ""))}


def launch(
    run: PipelineRun, step: defs.Step, row: StepRun, inputs: list[DatasetVersion], *, now: datetime
) -> Launched:
    """Start one attempt. A refusal comes back in ``Launched.refusal`` (not raised), so the
    gate's audit row of a refused query is kept with the step's record."""
    team = run.pipeline.team
    if step.kind == defs.QUERY:
        try:
            query = submit_query(
                run.created_by,
                step.warehouse,
                step.sql,
                now=now,
                team=team.slug,
                acknowledge_warnings=step.acknowledge_warnings,
                inline=False,
            )
        except KarimasuError as error:
            query_id = _plain(error.details).get("query_id")
            found = Query.objects.filter(pk=query_id).first() if query_id else None
            return Launched(query=found, refusal=error.message)
        return Launched(query=query)
    staging = staging_dir(row)
    shutil.rmtree(staging, ignore_errors=True)  # a previous attempt's partial output
    staging.mkdir(parents=True)
    request = _job_request(team, step, inputs=inputs, output=row)
    request.name = f"{run.pipeline.name}-{step.name}"[:100]
    try:
        job = submission.submit_job(run.created_by, request, now=now)
    except KarimasuError as error:
        return Launched(refusal=error.message)
    return Launched(job=job)


def _job_request(
    team: Team, step: defs.Step, *, inputs: list[DatasetVersion], output: StepRun | None
) -> submission.JobRequest:
    job = dict(step.job)
    env = {str(k): str(v) for k, v in dict(job.pop("env", {})).items()}
    mount = getattr(settings, "PIPELINES_DATASETS_MOUNT", "")
    system: list[dict[str, Any]] = []
    for version in inputs:
        path = f"{INPUTS_ROOT}/{version.dataset.name}"
        env[f"KARIMASU_INPUT_{version.dataset.name.upper()}"] = path
        if mount:
            system.append({"name": mount, "sub_path": version.path, "path": path, "write": False})
    if output is not None:
        env["KARIMASU_OUTPUT_DIR"] = OUTPUT_DIR
        if mount:
            relative = str(staging_dir(output).relative_to(datasets_dir()))
            system.append({"name": mount, "sub_path": relative, "path": OUTPUT_DIR, "write": True})
    return submission.JobRequest(
        name=step.name,
        image=str(job.pop("image")),
        team=team.slug,
        max_runtime_s=int(job.pop("max_runtime_s", DEFAULT_RUNTIME_S)),
        gpus=int(job.pop("gpus", 0)),
        env=env,
        system_mounts=system,
        **job,
    )


def outcome(row: StepRun) -> Outcome:
    if row.query_id is not None:
        return _query_outcome(Query.objects.get(pk=row.query_id))
    if row.job_id is not None:
        return _job_outcome(Job.objects.get(pk=row.job_id))
    return Outcome(FAILED, phrase(gettext_noop("The step's query or job is gone.")), retryable=True)


# How a step's query or job ended, one sentence per status (the English as before: "Job 26
# failed: ..."), so a reader of another language gets the status in words too.
_QUERY_ENDED = {
    "failed": gettext_noop("Query %(query)s failed: %(message)s"),
    "killed": gettext_noop("Query %(query)s was killed: %(message)s"),
    "cancelled": gettext_noop("Query %(query)s was cancelled: %(message)s"),
    "lost": gettext_noop("Query %(query)s was lost: %(message)s"),
    "rejected": gettext_noop("Query %(query)s was rejected: %(message)s"),
}
_QUERY_ENDED_OTHERWISE = gettext_noop("Query %(query)s %(status)s: %(message)s")
_JOB_ENDED = {
    job_states.FAILED: gettext_noop("Job %(job)s failed: %(message)s"),
    job_states.CANCELLED: gettext_noop("Job %(job)s was cancelled: %(message)s"),
    job_states.TIMED_OUT: gettext_noop("Job %(job)s ran out of time: %(message)s"),
}
_JOB_ENDED_OTHERWISE = gettext_noop("Job %(job)s %(status)s: %(message)s")


def _query_outcome(query: Query) -> Outcome:
    scanned = int(query.bytes_estimate or 0)
    if query.status in QUERY_ACTIVE:
        return Outcome(RUNNING)
    if query.status == QUERY_SUCCEEDED:
        return Outcome(DONE, bytes_scanned=scanned)
    error = query.error or {}
    if error.get("message"):
        cause: Any = error_phrase(error, "")
    elif query.kill_reason in KILL_REASONS:
        cause = phrase(query.kill_reason)
    else:
        cause = query.kill_reason or phrase(gettext_noop("no message"))
    message = phrase(
        _QUERY_ENDED.get(query.status, _QUERY_ENDED_OTHERWISE),
        query=query.pk,
        status=query.status,
        message=cause,
    )
    retryable = query.status not in {QUERY_KILLED, QUERY_CANCELLED}
    return Outcome(FAILED, message, retryable, 0.0, scanned)


def _job_outcome(job: Job) -> Outcome:
    hours = 0.0
    if job.started_at and job.finished_at:
        hours = job.gpus * (job.finished_at - job.started_at).total_seconds() / 3600
    if job.status not in job_states.TERMINAL:
        return Outcome(RUNNING)
    if job.status == job_states.SUCCEEDED:
        return Outcome(DONE, gpu_hours=hours)
    message = phrase(
        _JOB_ENDED.get(job.status, _JOB_ENDED_OTHERWISE),
        job=job.pk,
        status=job.status,
        message=job.message or job.reason or phrase(gettext_noop("no message")),
    )
    return Outcome(FAILED, message, job.status != job_states.CANCELLED, hours)


def stage_output(row: StepRun, staging: Any) -> None:
    """Put the attempt's output in ``staging``: a query's Parquet result (whole: a result
    cut at the warehouse's row cap is refused, never published as if complete), or what
    the container wrote there itself."""
    if row.query_id is not None:
        query = Query.objects.get(pk=row.query_id)
        if query.truncated:
            raise InvalidRequest(
                phrase(
                    gettext_noop(
                        "Query %(query)s returned more than the warehouse's row cap (%(cap)s "
                        "rows): a dataset must be whole. Aggregate or filter further, or ask "
                        "an admin for a higher row cap."
                    ),
                    query=query.pk,
                    cap=f"{query.warehouse.row_cap:,}",
                ),
                code="result_truncated",
            )
        if not query.result_file:
            raise InvalidRequest(
                phrase(gettext_noop("Query %(query)s returned no columns."), query=query.pk),
                code="empty_output",
            )
        staging.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path_of(query), staging / "data.parquet")
        return
    if not staging.is_dir():
        raise InvalidRequest(
            phrase(gettext_noop("The step's output directory is gone.")), code="empty_output"
        )


def stop(actor: Any, row: StepRun, *, now: datetime) -> None:
    """Stop what the step's current attempt runs (a cancel through the gate or the
    scheduler, with the same rights as there)."""
    if row.query_id is not None:
        query = Query.objects.get(pk=row.query_id)
        if query.status in QUERY_ACTIVE:
            cancel_query(actor, query.pk, now=now, reason="pipeline run cancelled")
    if row.job_id is not None:
        job = Job.objects.get(pk=row.job_id)
        if job.status not in job_states.TERMINAL:
            submission.cancel_job(actor, job, now=now, reason="pipeline run cancelled")
