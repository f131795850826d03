"""Pipeline pages: the list, one pipeline (its DAG and runs) and one run (the DAG with live
step states, each step's attempts, outputs and cost; cancel and resume). Writes go through
the same services as the API."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from pipelines import definition as defs
from pipelines import states
from pipelines.graph import layout
from pipelines.models import Pipeline, PipelineRun
from pipelines.services import runs
from pipelines.services.access import access_pipeline, visible_pipelines
from portal.errors import KarimasuError, NotFoundError
from portal.live import render_live

RUN_REGIONS = {"dag": "pipelines/_run_dag.html", "steps": "pipelines/_run_steps.html"}


def _refused(request: HttpRequest, error: KarimasuError) -> None:
    messages.error(request, error.message)


@login_required
def pipelines_page(request: HttpRequest) -> HttpResponse:
    rows = visible_pipelines(request.user).prefetch_related("runs").order_by("team__slug", "name")
    items = [{"pipeline": p, "last": p.runs.order_by("-number").first()} for p in rows]
    return render(request, "pipelines/list.html", {"items": items})


def _visible(request: HttpRequest, pipeline_id: int) -> Pipeline:
    try:
        return access_pipeline(request.user, pipeline_id)
    except NotFoundError as error:
        raise Http404(error.message) from error


@login_required
def pipeline_page(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _visible(request, pipeline_id)
    if request.method == "POST" and request.POST.get("action") == "run":
        try:
            access_pipeline(request.user, pipeline_id, "run")
            run = runs.start_run(request.user, pipeline, now=timezone.now())
        except KarimasuError as error:
            _refused(request, error)
            return redirect("pipeline", pipeline_id=pipeline.pk)
        messages.success(request, _("Started run #%(n)s.") % {"n": run.number})
        return redirect("pipeline-run", run_id=run.pk)
    graph = layout(defs.parse(pipeline.definition))
    context = {
        "pipeline": pipeline,
        "graph": graph,
        "status": {},
        "runs": pipeline.runs.order_by("-number")[:50],
    }
    return render(request, "pipelines/pipeline.html", context)


def _run(request: HttpRequest, run_id: int) -> PipelineRun:
    run = (
        PipelineRun.objects.select_related("pipeline__team", "created_by").filter(pk=run_id).first()
    )
    if run is None:
        raise Http404(_("No pipeline run %(id)s.") % {"id": run_id})
    _visible(request, run.pipeline_id)
    return run


@login_required
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run(request, run_id)
    action = request.POST.get("action") if request.method == "POST" else None
    if action in {"cancel", "resume"}:
        try:
            if action == "cancel":
                runs.cancel_run(request.user, run, now=timezone.now())
            else:
                runs.resume_run(request.user, run, now=timezone.now())
        except KarimasuError as error:
            _refused(request, error)
        return redirect("pipeline-run", run_id=run.pk)
    steps = list(run.steps.select_related("output__dataset", "query", "job"))
    context: dict[str, Any] = {
        "run": run,
        "pipeline": run.pipeline,
        "steps": steps,
        "graph": layout(defs.parse(run.definition)),
        "status": {s.name: s.status for s in steps},
        "gpu_hours": sum(s.gpu_hours for s in steps),
        "bytes_scanned": sum(s.bytes_scanned for s in steps),
        "can_cancel": run.status not in states.RUN_FINAL,
        "can_resume": states.run_can(run.status, states.RUNNING),
    }
    return render_live(
        request, "pipelines/run.html", context, RUN_REGIONS, stop=run.status in states.RUN_FINAL
    )
