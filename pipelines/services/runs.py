"""Running pipelines: start a run, advance it, retry, resume, cancel; the only writer of
``PipelineRun.status`` and ``StepRun.status``.

:func:`advance` is the whole engine and is idempotent: it locks the run row, looks at each
step and does the one thing its state calls for (launch, collect, retry, skip). It is
called when a run starts, by the beat task every few seconds for every active run, and
after a query or a job of a step ends; a worker killed in the middle leaves rows that the
next call continues from. A step's query or job is created in the same transaction that
records it on the step, so no crash can launch a step twice or lose what it launched.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from pipelines import definition as defs
from pipelines import states
from pipelines.models import DatasetVersion, Pipeline, PipelineRun, StepRun
from pipelines.services import datasets, launch
from pipelines.services.access import access_pipeline, require_member
from portal.errors import Conflict, InvalidRequest
from portal.phrases import phrase, stored

log = logging.getLogger("karimasu.pipelines")


def parse_definition(data: Any) -> defs.Definition:
    try:
        return defs.parse(data)
    except defs.DefinitionError as error:
        try:
            message = _(error.template) % error.params if error.params else _(error.template)
        except (KeyError, TypeError, ValueError):  # a translation that does not fit
            message = error.message
        raise InvalidRequest(
            _("%(field)s: %(message)s") % {"field": error.field, "message": message},
            code="invalid_pipeline",
            details={error.field: [message]},
        ) from error


def save_pipeline(
    actor: Any,
    *,
    team_slug: str,
    name: str,
    definition: Any,
    now: datetime,
    schedule: str = "",
    overlap: str = "skip",
    description: str = "",
) -> Pipeline:
    """Create or replace ``team_slug``'s pipeline ``name``. Every query step is judged by
    the gate now (no engine call): a pipeline the gate would refuse is never saved."""
    from pipelines.services import schedules

    team = require_member(actor, team_slug)
    parsed = parse_definition(definition)
    next_run = schedules.next_run(schedule, now) if schedule else None
    launch.preflight(actor, team, parsed)
    with transaction.atomic():
        pipeline, created = Pipeline.objects.select_for_update().get_or_create(
            team=team,
            name=name,
            defaults={
                "owner": actor,
                "definition": definition,
                "schedule": schedule,
                "overlap": overlap,
                "description": description,
                "next_run_at": next_run,
                "created_at": now,
                "updated_at": now,
            },
        )
        if not created:
            access_pipeline(actor, pipeline.pk, "change")
            pipeline.definition = definition
            pipeline.schedule = schedule
            pipeline.overlap = overlap
            pipeline.description = description
            pipeline.next_run_at = next_run
            pipeline.updated_at = now
            pipeline.save()
    return pipeline


def start_run(
    actor: Any, pipeline: Pipeline, *, now: datetime, trigger: str = "manual"
) -> PipelineRun:
    """A new run of the pipeline's current definition; its query steps are judged by the
    gate first, so a refused step stops the run before anything of it runs."""
    parsed = parse_definition(pipeline.definition)
    launch.preflight(pipeline.owner if trigger == "schedule" else actor, pipeline.team, parsed)
    with transaction.atomic():
        Pipeline.objects.select_for_update().filter(pk=pipeline.pk).exists()
        last = pipeline.runs.aggregate(n=Max("number"))["n"] or 0
        run = PipelineRun.objects.create(
            pipeline=pipeline,
            number=last + 1,
            definition=pipeline.definition,
            trigger=trigger,
            created_by=actor,
            status=states.RUNNING,
            created_at=now,
            started_at=now,
        )
        StepRun.objects.bulk_create(
            StepRun(run=run, name=step.name, kind=step.kind, position=i)
            for i, step in enumerate(parsed.steps)
        )
        transaction.on_commit(lambda: _kick(run.pk))
    log.info("pipeline.run.started %s #%s trigger=%s", pipeline, run.number, trigger)
    return run


def _refresh_mart(team_id: int) -> None:
    from pipelines import tasks

    tasks.refresh_mart.delay(team_id)


def _kick(run_id: int) -> None:
    from pipelines import tasks

    tasks.advance_run.delay(run_id)


@dataclass
class _Context:
    run: PipelineRun
    parsed: defs.Definition
    steps: dict[str, StepRun]
    now: datetime


def advance(run_id: int, *, now: datetime) -> PipelineRun:
    """Move every step of the run as far as it can go now (see the module's docstring)."""
    with transaction.atomic():
        run = (
            PipelineRun.objects.select_for_update()
            .select_related("pipeline__team", "created_by")
            .get(pk=run_id)
        )
        if run.status in states.RUN_FINAL:
            return run
        ctx = _Context(
            run=run,
            parsed=defs.parse(run.definition),
            steps={s.name: s for s in run.steps.select_for_update().order_by("position")},
            now=now,
        )
        for step in ctx.parsed.steps:
            _advance_step(ctx, step, ctx.steps[step.name])
        _finish_run(ctx)
    return run


def _advance_step(ctx: _Context, step: defs.Step, row: StepRun) -> None:
    if row.status == states.RUNNING:
        _collect(ctx, step, row)
    elif row.status == states.RETRYING and row.retry_at is not None and row.retry_at <= ctx.now:
        _launch(ctx, step, row)
    elif row.status == states.PENDING:
        upstream = [ctx.steps[name] for name in step.upstream]
        if any(u.status in {states.FAILED, states.SKIPPED, states.CANCELLED} for u in upstream):
            _move(
                row,
                states.SKIPPED,
                ctx.now,
                message=phrase(gettext_noop("An upstream step did not succeed.")),
            )
        elif all(u.status in states.STEP_DONE for u in upstream):
            _start(ctx, step, row)


def _inputs(ctx: _Context, step: defs.Step) -> list[DatasetVersion]:
    outputs = (ctx.steps[name].output for name in step.inputs)
    return [version for version in outputs if version is not None]


def _start(ctx: _Context, step: defs.Step, row: StepRun) -> None:
    """A cache hit if an identical output exists, else the first attempt."""
    inputs = _inputs(ctx, step)
    identity = launch.identity(ctx.run, step)
    row.cache_key = defs.cache_key(
        step, identity=identity, inputs={v.dataset.name: v.cache_key for v in inputs}
    )
    hit = datasets.cached_version(ctx.run.pipeline.team, step.dataset, row.cache_key)
    if hit is not None:
        row.output = hit
        _move(
            row,
            states.CACHED,
            ctx.now,
            message=phrase(gettext_noop("Reused %(version)s (same inputs)."), version=str(hit)),
        )
        return
    _launch(ctx, step, row)


def _launch(ctx: _Context, step: defs.Step, row: StepRun) -> None:
    row.attempt += 1
    row.retry_at = None
    row.started_at = ctx.now
    with transaction.atomic():  # the query or job and its record on the step, together
        launched = launch.launch(ctx.run, step, row, _inputs(ctx, step), now=ctx.now)
        row.query, row.job = launched.query, launched.job
        _move(row, states.RUNNING, ctx.now, message="")
    if launched.refusal:  # the gate or the scheduler said no: final, and on the record
        _attempt_failed(ctx, step, row, launched.refusal, retry=False)


def _collect(ctx: _Context, step: defs.Step, row: StepRun) -> None:
    outcome = launch.outcome(row)
    if outcome.state == launch.RUNNING:
        return
    row.gpu_hours, row.bytes_scanned = outcome.gpu_hours, outcome.bytes_scanned
    if outcome.state == launch.FAILED:
        _attempt_failed(ctx, step, row, outcome.message, retry=outcome.retryable)
        return
    staging = datasets.staging_dir(row)
    try:
        launch.stage_output(row, staging)
        row.output = datasets.publish(
            row,
            staging,
            team=ctx.run.pipeline.team,
            name=step.dataset,
            cache_key=row.cache_key,
            inputs=_inputs(ctx, step),
            query=row.query,
            job=row.job,
            now=ctx.now,
        )
    except InvalidRequest as error:
        shutil.rmtree(staging, ignore_errors=True)
        _attempt_failed(ctx, step, row, error.message, retry=False)
        return
    _move(row, states.SUCCEEDED, ctx.now, message="")
    if row.output.format == "parquet":  # queryable in the team's data mart
        team_id = ctx.run.pipeline.team_id
        transaction.on_commit(lambda: _refresh_mart(team_id))


def _attempt_failed(
    ctx: _Context, step: defs.Step, row: StepRun, message: str, *, retry: bool
) -> None:
    """``message`` (a ``Phrase`` where it is one) is stored with its msgid and params."""
    english, data = stored(message)
    row.history = [
        *row.history,
        {
            "attempt": row.attempt,
            "query_id": row.query_id,
            "job_id": row.job_id,
            "message": english[:500],
            "message_data": data,
            "finished_at": ctx.now.isoformat(),
        },
    ]
    if retry and row.attempt <= step.retries:
        row.retry_at = ctx.now + timedelta(seconds=step.retry_delay_s)
        _move(
            row,
            states.RETRYING,
            ctx.now,
            message=phrase(
                gettext_noop("Attempt %(attempt)s failed: %(message)s; retrying."),
                attempt=row.attempt,
                message=message if data else english[:300],
            ),
        )
        return
    _move(row, states.FAILED, ctx.now, message=message)


def _move(row: StepRun, to: str, now: datetime, *, message: str | None = None) -> None:
    if row.status != to and not states.step_can(row.status, to):
        raise Conflict(
            _("Step %(step)s cannot go from %(source)s to %(target)s.")
            % {"step": row.name, "source": row.status, "target": to}
        )
    row.status = to
    if message is not None:
        row.message, row.message_data = _stored(message)
    if to in states.STEP_FINAL:
        row.finished_at = now
    row.save()


def _stored(message: str) -> tuple[str, dict[str, Any]]:
    """What a row stores of ``message``: its English (cut to the column) and its msgid and
    params (none when the cut would lose what the params say)."""
    english, data = stored(message)
    return (english, data) if len(english) <= 1000 else (english[:1000], {})


def _finish_run(ctx: _Context) -> None:
    rows = list(ctx.steps.values())
    if not all(r.status in states.STEP_FINAL for r in rows):
        return
    failed = [r.name for r in rows if r.status in {states.FAILED, states.SKIPPED}]
    run = ctx.run
    run.status = states.FAILED if failed else states.SUCCEEDED
    summary = phrase(gettext_noop("Failed: %(steps)s."), steps=", ".join(failed)) if failed else ""
    run.message, run.message_data = _stored(summary)
    run.finished_at = ctx.now
    run.save(update_fields=["status", "message", "message_data", "finished_at"])
    log.info("pipeline.run.finished %s #%s %s", run.pipeline, run.number, run.status)


def cancel_run(actor: Any, run: PipelineRun, *, now: datetime) -> PipelineRun:
    access_pipeline(actor, run.pipeline_id, "change")
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run.pk)
        if run.status in states.RUN_FINAL:
            raise Conflict(
                _("Run #%(number)s has already ended (%(status)s).")
                % {"number": run.number, "status": run.status}
            )
        for row in run.steps.select_for_update():
            if row.status in states.STEP_FINAL:
                continue
            launch.stop(actor, row, now=now)
            _move(row, states.CANCELLED, now, message=phrase(gettext_noop("Cancelled.")))
        run.status = states.CANCELLED
        run.finished_at = now
        run.message, run.message_data = _stored(
            phrase(gettext_noop("Cancelled by %(user)s."), user=actor.get_username())
        )
        run.save(update_fields=["status", "finished_at", "message", "message_data"])
    return run


def resume_run(actor: Any, run: PipelineRun, *, now: datetime) -> PipelineRun:
    """Run a failed or cancelled run on from where it stopped: its failed, skipped and
    cancelled steps start again; what succeeded is kept and never run again."""
    access_pipeline(actor, run.pipeline_id, "change")
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run.pk)
        if not states.run_can(run.status, states.RUNNING):
            raise Conflict(
                _("Run #%(number)s is %(status)s: only a failed or cancelled run resumes.")
                % {"number": run.number, "status": run.status}
            )
        for row in run.steps.select_for_update():
            if row.status in {states.FAILED, states.SKIPPED, states.CANCELLED}:
                _move(row, states.PENDING, now, message=phrase(gettext_noop("Resumed.")))
                row.finished_at = None
                row.save(update_fields=["finished_at"])
        run.status = states.RUNNING
        run.finished_at = None
        run.message, run.message_data = "", {}
        run.save(update_fields=["status", "finished_at", "message", "message_data"])
        transaction.on_commit(lambda: _kick(run.pk))
    return run


def active_runs() -> list[int]:
    return list(PipelineRun.objects.filter(status=states.RUNNING).values_list("pk", flat=True))
