"""Submitting and cancelling training jobs and sweeps: validation with clear errors, then
rows in `queued`, then a scheduling cycle on commit."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from portal.accounts.models import Membership, Team, User
from portal.errors import Conflict, InvalidRequest, NotPermitted
from scheduler import messages, states
from scheduler.limits import MAX_GPUS, MAX_JOB_GPUS, MAX_SWEEP_JOBS
from scheduler.models import (
    Job,
    NamedMount,
    NamedSecret,
    Node,
    PriorityClass,
    Sweep,
    TeamQuota,
)
from scheduler.services import job_inputs
from scheduler.services.access import (
    can_manage_job,
    can_manage_sweep,
    may_run_unpreemptible,
    may_use_priority,
)
from scheduler.services.jobs import InvalidTransition, request_cycle, transition_job

log = logging.getLogger("karimasu.submit")

ENV_NAME = job_inputs.ENV_NAME


@dataclass
class JobRequest:
    """A job as asked for, before validation (the API's serializer fills it)."""

    name: str
    image: str
    team: str
    max_runtime_s: int
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    gpus: int = 1  # per node
    nodes: int = 1  # more than 1: a multi-node job (gang), one pod of ``gpus`` per node
    gpu_models: list[str] = field(default_factory=list)
    cpu_millis: int = 1000
    memory_mb: int = 4096
    priority_class: str = ""
    preemptible: bool = True
    mounts: list[Any] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    # Set by services only (pipelines), never by the API: a directory of a named mount at a
    # path of the service's choosing, writable when ``write`` (``{"name", "sub_path", "path",
    # "write"}``); stored in ``Job.mounts`` with ``"system": true``.
    system_mounts: list[dict[str, Any]] = field(default_factory=list)


def _fail(field_name: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, details={field_name: [message]})


def _team_for(actor: User, slug: str) -> Team:
    membership = (
        Membership.objects.select_related("team").filter(user=actor, team__slug=slug).first()
    )
    if membership is not None:
        return membership.team
    if actor.is_staff:
        team = Team.objects.filter(slug=slug).first()
        if team is not None:
            return team
    raise _fail("team", _("You are not a member of a team %(team)r.") % {"team": slug})


def validate(actor: User, request: JobRequest) -> tuple[Team, PriorityClass]:
    """Check a request against the cluster and the rules; raise InvalidRequest naming the
    field, or NotPermitted for limits. What reaches the pod (image, env, annotations) is
    checked by ``job_inputs`` and stored normalized on ``request``."""
    team = _team_for(actor, request.team)
    request.image = job_inputs.check_image(request.image, settings.KARIMASU_ALLOWED_REGISTRIES)
    request.env = job_inputs.check_env(request.env)
    request.annotations = job_inputs.check_annotations(
        request.annotations, settings.KARIMASU_JOB_ANNOTATION_PREFIXES
    )
    limit_s = settings.KARIMASU_MAX_JOB_RUNTIME_HOURS * 3600
    if not 60 <= request.max_runtime_s <= limit_s:
        raise _fail(
            "max_runtime_s",
            _("Max runtime must be between 60 s and %(most)s s.") % {"most": limit_s},
        )
    _validate_fit(request)
    validate_mounts(request.mounts)
    _validate_system_mounts(request.system_mounts)
    _validate_secrets(team, request)
    priority = _priority(request.priority_class)
    quota = TeamQuota.objects.filter(team=team).first()
    _check_privileges(actor, team, quota, priority, request)
    total = request.gpus * request.nodes
    if quota is not None and quota.user_gpu_cap is not None and total > quota.user_gpu_cap:
        raise NotPermitted(
            _("%(team)s lets one member hold at most %(limit)s GPUs; this job asks for %(gpus)s.")
            % {"team": team.slug, "limit": quota.user_gpu_cap, "gpus": total},
            code="over_limit",
            details={"gpus": total, "limit": quota.user_gpu_cap},
        )
    return team, priority


def _check_privileges(
    actor: User,
    team: Team,
    quota: TeamQuota | None,
    priority: PriorityClass,
    request: JobRequest,
) -> None:
    """Members run at the default priority (or a class their team's quota lists in
    ``member_priority_classes``) and preemptibly; other classes and non-preemptible jobs
    are for the team's leads and admins."""
    if not may_use_priority(actor, team, quota, priority):
        raise NotPermitted(
            _(
                "Priority class %(priority)r is for %(team)s's leads and admins; "
                "leave it empty to use the default."
            )
            % {"priority": priority.name, "team": team.slug},
            code="priority_not_allowed",
            details={"priority_class": [priority.name]},
        )
    if not request.preemptible and not may_run_unpreemptible(actor, team):
        raise NotPermitted(
            _("Only team leads and admins may submit jobs that cannot be preempted."),
            code="preemptible_required",
            details={"preemptible": [False]},
        )


def _check_guarantee(team: Team, request: JobRequest, count: int = 1) -> None:
    """Non-preemptible work of a team (here ``count`` jobs like ``request``) fits within its
    guaranteed GPUs, all of it together, so reclaiming a guarantee is always possible.
    Called with the team row locked."""
    if request.preemptible or not request.gpus:
        return
    wanted = request.gpus * request.nodes * count
    quota = TeamQuota.objects.filter(team=team).first()
    guaranteed = quota.guaranteed_gpus if quota is not None else 0
    held = (
        Job.objects.filter(team=team, preemptible=False)
        .exclude(status__in=states.TERMINAL)
        .aggregate(total=Sum(F("gpus") * F("nodes")))["total"]
        or 0
    )
    if held + wanted > guaranteed:
        raise NotPermitted(
            _(
                "Jobs that cannot be preempted must fit within %(team)s's guarantee of "
                "%(guaranteed)s GPUs (%(held)s already held by such jobs); submit it as "
                "preemptible."
            )
            % {"team": team.slug, "guaranteed": guaranteed, "held": held},
            code="over_guarantee",
            details={"gpus": wanted, "guaranteed": guaranteed, "held": held},
        )


def _fits_guarantee(team: Team, request: JobRequest) -> bool:
    probe = JobRequest(**{**request.__dict__, "preemptible": False})
    try:
        _check_guarantee(team, probe)
    except NotPermitted:
        return False
    return True


def _validate_fit(request: JobRequest) -> None:
    """Refuse a job no node of the cluster could ever hold. A cluster that reports no node
    at all (a new install before its first inventory, or every node gone) cannot say that:
    the job queues and waits for one (reason ``no-nodes``)."""
    _validate_size(request)
    nodes = list(Node.objects.filter(gone_at__isnull=True))
    if not nodes:
        return
    models = {n.gpu_model for n in nodes if n.gpu_model}
    unknown = [m for m in request.gpu_models if m not in models]
    if unknown:
        raise _fail(
            "gpu_models",
            _("Unknown GPU model(s) %(unknown)s; the cluster has %(models)s.")
            % {"unknown": ", ".join(unknown), "models": ", ".join(sorted(models)) or "-"},
        )
    fitting = [
        n
        for n in nodes
        if (not request.gpu_models or n.gpu_model in request.gpu_models)
        and n.gpu_capacity >= request.gpus
    ]
    if len(fitting) < request.nodes:
        raise _fail("gpus", _too_few_nodes(request, nodes))
    # What DaemonSet and static pods hold is never a job's (docs/cluster.md). A gang needs
    # ``nodes`` nodes that each hold a pod: the nodes-th largest is what it can count on.
    cpu = _nth_largest([n.cpu_allocatable_millis - n.daemon_cpu_millis for n in fitting], request)
    if request.cpu_millis > cpu:
        raise _fail(
            "cpu_millis",
            _("No node has %(cpu)sm CPU (largest: %(largest)sm besides system pods).")
            % {"cpu": request.cpu_millis, "largest": cpu}
            if request.nodes == 1
            else _("Fewer than %(nodes)s nodes have %(cpu)sm CPU besides system pods.")
            % {"nodes": request.nodes, "cpu": request.cpu_millis},
        )
    memory = _nth_largest([n.memory_allocatable_mb - n.daemon_memory_mb for n in fitting], request)
    if request.memory_mb > memory:
        raise _fail(
            "memory_mb",
            _("No node has %(memory)s MiB (largest: %(largest)s MiB besides system pods).")
            % {"memory": request.memory_mb, "largest": memory}
            if request.nodes == 1
            else _("Fewer than %(nodes)s nodes have %(memory)s MiB besides system pods.")
            % {"nodes": request.nodes, "memory": request.memory_mb},
        )


_USER_MOUNT_KEYS = {"name", "write"}


def _validate_size(request: JobRequest) -> None:
    """GPUs per node, nodes, and GPUs in all within the limits."""
    max_nodes = int(settings.KARIMASU_MAX_JOB_NODES)
    if not 1 <= request.nodes <= max_nodes:
        raise _fail("nodes", _("A job runs on 1 to %(max)s nodes.") % {"max": max_nodes})
    if not 0 <= request.gpus <= MAX_GPUS:
        raise _fail("gpus", _("A job uses 0 to %(max)s GPUs on one node.") % {"max": MAX_GPUS})
    if request.gpus * request.nodes > MAX_JOB_GPUS:
        raise _fail(
            "gpus",
            _("A job uses at most %(max)s GPUs in all (this one: %(nodes)s x %(gpus)s).")
            % {"max": MAX_JOB_GPUS, "nodes": request.nodes, "gpus": request.gpus},
        )


def _nth_largest(values: list[int], request: JobRequest) -> int:
    ordered = sorted(values, reverse=True)
    return ordered[request.nodes - 1] if len(ordered) >= request.nodes else 0


def _too_few_nodes(request: JobRequest, nodes: list[Node]) -> str:
    """Why the cluster can never hold the job's GPUs: no node big enough, or (a gang) too
    few of them."""
    models = ", ".join(request.gpu_models)
    capable = [n for n in nodes if not request.gpu_models or n.gpu_model in request.gpu_models]
    largest = max((n.gpu_capacity for n in capable), default=0)
    if request.nodes == 1 or request.gpus > largest:
        values = {"gpus": request.gpus, "models": models, "largest": largest}
        if models:
            return _("No node has %(gpus)s GPUs of %(models)s (the largest has %(largest)s).") % (
                values
            )
        return _("No node has %(gpus)s GPUs (the largest has %(largest)s).") % values
    count = sum(1 for n in capable if n.gpu_capacity >= request.gpus)
    values = {"nodes": request.nodes, "gpus": request.gpus, "models": models, "count": count}
    if models:
        return (
            _(
                "This job needs %(nodes)s nodes with %(gpus)s GPUs of %(models)s each; "
                "the cluster has %(count)s."
            )
            % values
        )
    return (
        _("This job needs %(nodes)s nodes with %(gpus)s GPUs each; the cluster has %(count)s.")
        % values
    )


def validate_mounts(mounts: list[Any]) -> None:
    """Each mount names a NamedMount; ``write`` only where it allows writing (jobs and
    sessions)."""
    wanted = [m if isinstance(m, Mapping) else {"name": m} for m in mounts]
    for request in wanted:
        extra = sorted(set(request) - _USER_MOUNT_KEYS)
        if extra:
            raise _fail(
                "mounts",
                _("A mount takes only name and write (not %(keys)s).") % {"keys": ", ".join(extra)},
            )
    named = {m.name: m for m in NamedMount.objects.filter(name__in=[w.get("name") for w in wanted])}
    for request in wanted:
        mount = named.get(request.get("name"))
        if mount is None:
            known = ", ".join(NamedMount.objects.values_list("name", flat=True)) or "-"
            raise _fail(
                "mounts",
                _("Unknown mount %(name)r (known: %(known)s).")
                % {"name": request.get("name"), "known": known},
            )
        if request.get("write") and not mount.allow_write:
            raise _fail("mounts", _("Mount %(name)r is read-only.") % {"name": mount.name})


def _validate_system_mounts(mounts: list[dict[str, Any]]) -> None:
    """A service's sub-path mounts: a known named mount, a relative sub path inside it and an
    absolute path in the container, neither with ``..``."""
    names = set(
        NamedMount.objects.filter(name__in=[m["name"] for m in mounts]).values_list(
            "name", flat=True
        )
    )
    for mount in mounts:
        sub, path = PurePosixPath(mount["sub_path"]), PurePosixPath(mount["path"])
        if mount["name"] not in names:
            raise _fail("mounts", _("Unknown mount %(name)r.") % {"name": mount["name"]})
        if sub.is_absolute() or ".." in sub.parts or not sub.parts:
            raise _fail("mounts", _("Bad sub path %(path)r.") % {"path": mount["sub_path"]})
        if not path.is_absolute() or ".." in path.parts:
            raise _fail("mounts", _("Bad mount path %(path)r.") % {"path": mount["path"]})


def _validate_secrets(team: Team, request: JobRequest) -> None:
    """``{"VAR": "named-secret/key"}``: each names a Secret an admin listed for the job's
    team (``NamedSecret``), and a key it allows; the variable follows the ``env`` rules and
    is not also in ``env``. Normalized to ``{"VAR": {"secret", "key"}}`` on the request."""
    if not request.secrets:
        return
    job_inputs.check_env(dict.fromkeys(request.secrets, ""))
    clash = sorted(set(request.secrets) & set(request.env))
    if clash:
        raise _fail(
            "secrets",
            gettext("%(names)s is set in env too: keep one.") % {"names": ", ".join(clash)},
        )
    names = {str(v).partition("/")[0] for v in request.secrets.values()}
    granted = {s.name: s for s in NamedSecret.objects.filter(name__in=names, teams=team)}
    resolved: dict[str, Any] = {}
    for variable, reference in request.secrets.items():
        name, _, key = str(reference).partition("/")
        secret = granted.get(name)
        if secret is None or not key:
            raise _fail(
                "secrets",
                gettext(
                    "%(reference)r: write named-secret/key, naming a secret an admin made "
                    "available to %(team)s."
                )
                % {"reference": reference, "team": team.slug},
            )
        if secret.keys and key not in secret.keys:
            raise _fail(
                "secrets",
                gettext("Secret %(name)r has no key %(key)r jobs may read.")
                % {"name": name, "key": key},
            )
        resolved[variable] = {"secret": secret.secret, "key": key}
    request.secrets = resolved


def _priority(name: str) -> PriorityClass:
    if not name:
        default = PriorityClass.objects.filter(is_default=True).first()
        if default is not None:
            return default
        raise _fail("priority_class", _("No default priority class is configured."))
    priority = PriorityClass.objects.filter(name=name).first()
    if priority is None:
        names = ", ".join(PriorityClass.objects.values_list("name", flat=True))
        raise _fail(
            "priority_class",
            _("Unknown priority class %(name)r (one of: %(names)s).")
            % {"name": name, "names": names},
        )
    return priority


def _new_job(
    actor: User,
    team: Team,
    priority: PriorityClass,
    request: JobRequest,
    now: datetime,
    **extra: Any,
) -> Job:
    return Job(
        name=request.name,
        owner=actor,
        team=team,
        image=request.image.strip(),
        command=request.command,
        args=request.args,
        env=request.env,
        gpus=request.gpus,
        nodes=request.nodes,
        gpu_models=request.gpu_models,
        cpu_millis=request.cpu_millis,
        memory_mb=request.memory_mb,
        max_runtime_s=request.max_runtime_s,
        priority_class=priority.name,
        preemptible=request.preemptible,
        mounts=[*request.mounts, *({**m, "system": True} for m in request.system_mounts)],
        annotations=request.annotations,
        secret_env=request.secrets,
        status=states.QUEUED,
        submitted_at=now,
        **extra,
    )


def submit_job(
    actor: User,
    request: JobRequest,
    *,
    now: datetime,
    unpreemptible_if_allowed: bool = False,
    prepare: Callable[[Job], None] | None = None,
) -> Job:
    """Validate and queue one job, then ask for a cycle.

    ``unpreemptible_if_allowed`` (on-demand sessions): the job is made non-preemptible
    when the rules allow it (``actor`` may, and it fits the team's guarantee), else it
    stays preemptible instead of being refused. ``prepare`` is called with the saved job in
    the same transaction (a session adds its row and the job's service-set fields)."""
    team, priority = validate(actor, request)
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).exists()
        if unpreemptible_if_allowed:
            request.preemptible = not (
                may_run_unpreemptible(actor, team) and _fits_guarantee(team, request)
            )
        _check_guarantee(team, request)
        job = _new_job(actor, team, priority, request, now)
        job.save()
        if prepare is not None:
            prepare(job)
    log.info("job.submitted job=%s user=%s team=%s gpus=%s", job.pk, actor.pk, team.slug, job.gpus)
    request_cycle()
    return job


def expand_parameters(parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`{"grid": {"lr": [1, 2], "bs": [8]}}` -> the cartesian product; `{"list": [...]}` as is.

    >>> expand_parameters({"grid": {"lr": [0.1, 0.01], "bs": [32]}})
    [{'lr': 0.1, 'bs': 32}, {'lr': 0.01, 'bs': 32}]
    """
    if "grid" in parameters:
        grid = parameters["grid"]
        if (
            not isinstance(grid, Mapping)
            or not grid
            or not all(isinstance(v, list) and v for v in grid.values())
        ):
            raise _fail("parameters", _("A grid maps each parameter to a non-empty list."))
        size = job_inputs.grid_size(grid)  # counted before anything is expanded
        if size > MAX_SWEEP_JOBS:
            raise _fail(
                "parameters",
                _("A sweep makes at most %(max)s jobs (this one: %(jobs)s).")
                % {"max": MAX_SWEEP_JOBS, "jobs": size},
            )
        keys = list(grid)
        combos = [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(grid[k] for k in keys))
        ]
    elif "list" in parameters:
        combos = parameters["list"]
        if (
            not isinstance(combos, list)
            or not combos
            or not all(isinstance(c, Mapping) for c in combos)
        ):
            raise _fail("parameters", _("A list holds one object of parameters per job."))
        combos = [dict(c) for c in combos]
    else:
        raise _fail("parameters", _('Give {"grid": {...}} or {"list": [...]}.'))
    if len(combos) > MAX_SWEEP_JOBS:
        raise _fail(
            "parameters",
            _("A sweep makes at most %(max)s jobs (this one: %(jobs)s).")
            % {"max": MAX_SWEEP_JOBS, "jobs": len(combos)},
        )
    bad = [k for c in combos for k in c if not ENV_NAME.match(str(k))]
    if bad:
        raise _fail(
            "parameters",
            _("Parameter names must be identifiers: %(names)s.")
            % {"names": ", ".join(sorted(set(map(str, bad))))},
        )
    return combos


def submit_sweep(
    actor: User,
    request: JobRequest,
    *,
    name: str,
    parameters: dict[str, Any],
    parallelism: int | None,
    now: datetime,
) -> Sweep:
    """One job per parameter set. Each job gets its parameters as environment variables
    (uppercased) and `{name}` placeholders in its args filled in."""
    combos = expand_parameters(parameters)
    team, priority = validate(actor, request)
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).exists()
        _check_guarantee(team, request, count=len(combos))
        sweep = Sweep.objects.create(
            name=name,
            owner=actor,
            team=team,
            template=request.__dict__,
            parameters=parameters,
            parallelism=parallelism,
            created_at=now,
        )
        jobs = []
        for i, combo in enumerate(combos):
            env = job_inputs.check_env(
                {**request.env, **{str(k).upper(): str(v) for k, v in combo.items()}}
            )
            args = [job_inputs.fill_placeholders(a, combo) for a in request.args]
            item = JobRequest(
                **{**request.__dict__, "env": env, "args": args, "name": f"{name}-{i + 1}"}
            )
            jobs.append(_new_job(actor, team, priority, item, now, sweep=sweep, sweep_params=combo))
        Job.objects.bulk_create(jobs)
    log.info("sweep.submitted sweep=%s jobs=%s user=%s", sweep.pk, len(jobs), actor.pk)
    request_cycle()
    return sweep


def cancel_job(actor: User | None, job: Job, *, now: datetime, reason: str = "") -> Job:
    """Cancel a job in any non-final state. On the cluster it is deleted after commit; if
    that fails, reconcile deletes it later (its row no longer wants it). ``reason`` (an
    admin's kill) is recorded in the job's message and its cancel event.

    A scheduling cycle may change the job between the caller's read and this write (admit
    it, requeue it as a new attempt): the cancel then reads the job again and cancels it in
    its new state, instead of failing with a conflict."""
    if actor is not None and not can_manage_job(actor, job):
        raise NotPermitted(_("Only the job's owner, its team's leads and admins can cancel it."))
    if actor is not None:
        template = messages.CANCELLED_BY_BECAUSE if reason else messages.CANCELLED_BY
        message = messages.stored(template, user=actor.get_username(), reason=reason)
    else:
        template = messages.CANCELLED_BY_SYSTEM_BECAUSE if reason else messages.CANCELLED_BY_SYSTEM
        message = messages.stored(template, reason=reason)
    for _try in range(_CANCEL_TRIES):
        if job.status in states.TERMINAL:
            return job
        was_on_cluster = job.status in states.ON_CLUSTER
        try:
            transition_job(
                job,
                states.CANCELLED,
                now=now,
                reason="cancelled",
                message=message,
                finished_at=now,
                eta=None,
            )
        except InvalidTransition:
            job.refresh_from_db()
            continue
        if was_on_cluster:
            from scheduler import tasks

            transaction.on_commit(partial(tasks.delete_from_cluster.delay, job.pk, job.attempt))
        request_cycle()
        return job
    raise Conflict(
        _("Job %(id)s kept changing while it was being cancelled; try again.") % {"id": job.pk},
        code="busy",
    )


_CANCEL_TRIES = 5


def cancel_sweep(actor: User, sweep: Sweep, *, now: datetime) -> int:
    if not can_manage_sweep(actor, sweep):
        raise NotPermitted(_("Only the sweep's owner, its team's leads and admins can cancel it."))
    cancelled = 0
    for job in sweep.jobs.exclude(status__in=states.TERMINAL):
        cancel_job(None, job, now=now)
        cancelled += 1
    return cancelled


def sweep_status(counts: Mapping[str, int]) -> str:
    """One word for a sweep from its jobs' statuses.

    >>> sweep_status({"succeeded": 3, "running": 1}), sweep_status({"succeeded": 2, "failed": 1})
    ('running', 'failed')
    """
    total = sum(counts.values())
    active = sum(counts.get(s, 0) for s in (*states.ON_CLUSTER, states.PREEMPTED, states.LOST))
    if active:
        return "running"
    if counts.get(states.QUEUED):
        return "queued"
    if counts.get(states.SUCCEEDED) == total:
        return "succeeded"
    if counts.get(states.CANCELLED) == total:
        return "cancelled"
    return "failed"
