"""The simulated Job controller, TTL controller and garbage collector (batch/v1 semantics).

Per Job:

- NonIndexed (the default): creates Pods ``<job>-<5 chars>`` from the template until
  ``completions`` succeeded, at most ``parallelism`` at a time;
- ``completionMode: Indexed``: one Pod per completion index 0..completions-1 (lowest pending
  first, at most ``parallelism``), named ``<job>-<index>-<5 chars>``, with the label and
  annotation ``batch.kubernetes.io/job-completion-index``, env ``JOB_COMPLETION_INDEX`` (a
  fieldRef to that label), ``hostname: <job>-<index>`` (unless the template sets one; its
  ``subdomain`` is kept); ``status.completedIndexes`` (and ``failedIndexes`` with
  ``backoffLimitPerIndex``) in upstream's ``"0-2,4"`` notation; with
  ``backoffLimitPerIndex`` an index whose failures exceed it fails alone (the Job ends
  Failed, FailedIndexes, once every index succeeded or failed; MaxFailedIndexesExceeded at
  once past ``maxFailedIndexes``);
- Pods are labelled ``job-name``, ``controller-uid`` (and their ``batch.kubernetes.io/``
  forms) and owned by the Job;
- counts ``active``/``ready``/``succeeded``/``failed`` (zero counts are omitted, as upstream);
  a failure is a Failed Pod or a container restart (restartPolicy OnFailure);
- ``podFailurePolicy`` (see :func:`policy_verdict`): FailJob fails the Job at once (reason
  PodFailurePolicy), Ignore does not count the failure, FailIndex fails the Pod's index;
- replaces a failed Pod after upstream's back-off (10 s, doubling, at most 6 min) until
  ``failed > backoffLimit``: then conditions FailureTarget and Failed, reason BackoffLimitExceeded;
- after ``activeDeadlineSeconds`` from ``startTime`` deletes its Pods and fails with
  DeadlineExceeded;
- on success sets SuccessCriteriaMet and Complete, and ``completionTime``;
- ``spec.suspend`` deletes active Pods (condition Suspended) and resuming restarts the clock;
- ``ttlSecondsAfterFinished`` deletes a finished Job (and its Pods) once the time has passed.

Deleting a Job follows ``propagationPolicy``: Foreground deletes the Pods first, Background
deletes the Job and leaves the Pods to the garbage collector (the next controller step), Orphan
(the batch/v1 default when none is given) keeps the Pods and drops their ownerReferences.
"""

from __future__ import annotations

import copy
from typing import Any

from . import resources as r
from .admission import create_owned_pod
from .clock import parse_rfc3339, rfc3339
from .deletion import OWNERS, delete_gracefully
from .errors import bad_request
from .events import EventRecorder
from .scheduling import is_terminal
from .store import Store
from .validation import random_suffix

Obj = dict[str, Any]
OWNER_LABEL = "batch.kubernetes.io/controller-uid"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
BACKOFF_BASE_SECONDS = 10
BACKOFF_MAX_SECONDS = 360


def owned_pods(job: Obj, pods: list[Obj]) -> list[Obj]:
    """Pods the Job controls (by the controller-uid label), oldest first."""
    uid = job["metadata"]["uid"]
    return [p for p in pods if (p["metadata"].get("labels") or {}).get(OWNER_LABEL) == uid]


def finished_at(job: Obj) -> float | None:
    """When the Job reached Complete or Failed, or None while it is not finished."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return parse_rfc3339(condition["lastTransitionTime"])
    return None


def _terminated(pod: Obj) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0].get("state", {}).get("terminated") or {}


def delete_job(store: Store, namespace: str, name: str, policy: str | None) -> Obj:
    """Delete a Job with ``propagationPolicy`` semantics (see the module docstring)."""
    policy = policy or "Orphan"
    if policy not in ("Orphan", "Background", "Foreground"):
        raise bad_request(f"invalid propagationPolicy {policy!r}")
    with store.lock:
        job = store.get(r.JOBS, namespace, name)
        for pod in owned_pods(job, store.list(r.PODS, namespace)):
            if policy == "Foreground":
                store.delete(r.PODS, namespace, pod["metadata"]["name"])
            elif policy == "Orphan":
                pod["metadata"].pop("ownerReferences", None)
                store.replace(r.PODS, pod)
        return store.delete(r.JOBS, namespace, name)


def collect_garbage(store: Store) -> None:
    """Delete Pods whose owner (a Job, a DaemonSet: ``deletion.OWNERS``) no longer exists
    (Background propagation)."""
    live: set[str] = set().union(*(store.uids(rtype) for rtype in OWNERS))
    kinds = {(rtype.api_version, rtype.kind) for rtype in OWNERS}

    def orphaned(pod: Obj) -> bool:
        owners = [
            o
            for o in pod["metadata"].get("ownerReferences") or []
            if (o.get("apiVersion"), o.get("kind")) in kinds
        ]
        return bool(owners) and all(o.get("uid") not in live for o in owners)

    for pod in store.list(r.PODS, predicate=orphaned):  # copies only the orphans
        delete_gracefully(store, pod)
    jobs = store.uids(r.JOBS)

    def job_gone(svc: Obj) -> bool:  # a gang's headless Service, owned by its Job
        owners = [o for o in svc["metadata"].get("ownerReferences") or [] if o.get("kind") == "Job"]
        return bool(owners) and all(o.get("uid") not in jobs for o in owners)

    for svc in store.list(r.SERVICES, predicate=job_gone):
        store.delete(r.SERVICES, svc["metadata"]["namespace"], svc["metadata"]["name"])


class JobController:
    """Reconciles every Job with its Pods; called once per controller step."""

    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self.store = store
        self.recorder = recorder

    def sync(self, job: Obj, pods: list[Obj]) -> None:
        """Bring one Job's Pods and status in line with its spec."""
        if job["metadata"].get("deletionTimestamp"):
            return  # being deleted: no new Pods, no status changes (as upstream)
        now = self.store.clock.now()
        if self._finished(job, now):
            return
        spec, status = job["spec"], job.setdefault("status", {})
        mine = owned_pods(job, pods)
        active = [p for p in mine if not is_terminal(p)]
        succeeded_pods = [p for p in mine if p["status"].get("phase") == "Succeeded"]
        verdicts = [
            (p, policy_verdict(job, p)) for p in mine if p["status"].get("phase") == "Failed"
        ]
        counted = [p for p, (action, _) in verdicts if action != "Ignore"]
        failed = len(counted) + sum(_restarts(p) for p in active)
        indexed = spec.get("completionMode") == "Indexed"
        progress = (
            _IndexProgress(job, succeeded_pods, counted, active, verdicts) if indexed else None
        )
        fail_job = next((message for _, (action, message) in verdicts if action == "FailJob"), "")
        if progress is not None and progress.failed:  # a failed index runs no more
            doomed = [p for p in active if pod_index(p) in progress.failed]
            self._delete_pods(doomed)
            active = [p for p in active if p not in doomed]
        if spec.get("suspend"):
            self._delete_pods(active)
            active = []
            status.pop("startTime", None)
            self._set_condition(job, "Suspended", "True", "JobSuspended", "Job suspended", now)
        else:
            verdict = self._running_verdict(
                job, now, len(succeeded_pods), failed, fail_job, progress
            )
            if verdict is not None:
                self._delete_pods(active)
                active = []
                self._end(job, verdict, now)
            else:
                active += self._start_pods(job, progress, active, succeeded_pods, counted, now)
        if progress is not None:
            progress.write(status)
        self._write_status(job, active, len(succeeded_pods), failed)

    def _finished(self, job: Obj, now: float) -> bool:
        """True for a finished Job (deleted here once its TTL after finishing is over)."""
        finished = finished_at(job)
        if finished is None:
            return False
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is not None and now >= finished + ttl:
            meta = job["metadata"]
            delete_job(self.store, meta["namespace"], meta["name"], "Background")
        return True

    def _running_verdict(
        self,
        job: Obj,
        now: float,
        succeeded: int,
        failed: int,
        fail_job: str,
        progress: _IndexProgress | None,
    ) -> tuple[str, str, str] | None:
        """Resume if suspended before, start the clock, and say whether the Job is done:
        complete, failed by its pods or its policy, or past ``activeDeadlineSeconds``."""
        spec, status = job["spec"], job["status"]
        if _condition_true(job, "Suspended"):
            self._set_condition(job, "Suspended", "False", "JobResumed", "Job resumed", now)
        status.setdefault("startTime", rfc3339(now))
        started = parse_rfc3339(status["startTime"])
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and now >= started + deadline:
            return ("fail", "DeadlineExceeded", "Job was active longer than specified deadline")
        return self._verdict(job, succeeded, failed, fail_job, progress)

    def _end(self, job: Obj, verdict: tuple[str, str, str], now: float) -> None:
        if verdict[0] == "complete":
            self._complete(job, now)
        else:
            self._fail(job, verdict[1], verdict[2], now)

    def _start_pods(
        self,
        job: Obj,
        progress: _IndexProgress | None,
        active: list[Obj],
        succeeded_pods: list[Obj],
        counted: list[Obj],
        now: float,
    ) -> list[Obj]:
        """The Pods to add now: per missing index (Indexed), else up to parallelism."""
        if progress is not None:
            return [
                self._create_pod(job, index)
                for index in progress.to_start(len(active))
                if self._backoff_over(progress.failed_of(index), now)
            ]
        spec = job["spec"]
        wanted = min(spec.get("parallelism", 1), spec.get("completions", 1) - len(succeeded_pods))
        if len(active) >= wanted or not self._backoff_over(counted, now):
            return []
        return [self._create_pod(job) for _ in range(wanted - len(active))]

    def _verdict(
        self,
        job: Obj,
        succeeded: int,
        failed: int,
        fail_job: str,
        progress: _IndexProgress | None,
    ) -> tuple[str, str, str] | None:
        """("complete"|"fail", reason, message) when the Job is finished, else None."""
        spec = job["spec"]
        if fail_job:
            return "fail", "PodFailurePolicy", fail_job
        if progress is not None:
            done = progress.verdict()
            if done is not None:
                return done
        elif succeeded >= spec.get("completions", 1):
            return "complete", "CompletionsReached", ""
        if failed > spec.get("backoffLimit", 6):
            return "fail", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        return None

    def _backoff_over(self, failed_pods: list[Obj], now: float) -> bool:
        if not failed_pods:
            return True
        ends = [str(_terminated(p).get("finishedAt") or "") for p in failed_pods]
        last = max((parse_rfc3339(e) for e in ends if e), default=now)
        delay = min(BACKOFF_BASE_SECONDS << (len(failed_pods) - 1), BACKOFF_MAX_SECONDS)
        return now >= last + delay

    def _create_pod(self, job: Obj, index: int | None = None) -> Obj:
        meta, template = job["metadata"], job["spec"]["template"]
        template_meta = template.get("metadata") or {}
        prefix = meta["name"] if index is None else f"{meta['name']}-{index}"
        labels = dict(template_meta.get("labels") or {})
        annotations = dict(template_meta.get("annotations") or {})
        spec = copy.deepcopy(template.get("spec") or {})
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            spec.setdefault("hostname", prefix)
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                env = container.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append(
                        {
                            "name": "JOB_COMPLETION_INDEX",
                            "valueFrom": {
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": f"metadata.labels['{INDEX_KEY}']",
                                }
                            },
                        }
                    )
        pod_meta = {
            "name": f"{prefix}-{random_suffix()}",
            "generateName": f"{prefix}-",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
        }
        return create_owned_pod(
            self.store, self.recorder, job, ("batch/v1", "Job"), pod_meta, spec, "job-controller"
        )

    def _delete_pods(self, pods: list[Obj]) -> None:
        for pod in pods:
            if self.store.find(r.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"]):
                self.store.delete(r.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _set_condition(
        self, job: Obj, type_: str, value: str, reason: str, message: str, now: float
    ) -> None:
        conditions = job["status"].setdefault("conditions", [])
        stamp = rfc3339(now)
        new = {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastProbeTime": stamp,
            "lastTransitionTime": stamp,
        }
        for i, old in enumerate(conditions):
            if old["type"] == type_:
                if old["status"] != value:
                    conditions[i] = new
                return
        conditions.append(new)

    def _complete(self, job: Obj, now: float) -> None:
        self._set_condition(
            job,
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        )
        self._set_condition(
            job,
            "Complete",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        )
        job["status"]["completionTime"] = rfc3339(now)
        self.recorder.record(job, "Completed", "Job completed", component="job-controller")

    def _fail(self, job: Obj, reason: str, message: str, now: float) -> None:
        self._set_condition(job, "FailureTarget", "True", reason, message, now)
        self._set_condition(job, "Failed", "True", reason, message, now)
        self.recorder.record(job, reason, message, type_="Warning", component="job-controller")

    def _write_status(self, job: Obj, active: list[Obj], succeeded: int, failed: int) -> None:
        status = job["status"]
        counts = {"active": len(active), "succeeded": succeeded, "failed": failed}
        for field, value in counts.items():
            if value:
                status[field] = value
            else:
                status.pop(field, None)
        status["ready"] = sum(1 for p in active if _pod_ready(p))
        status["terminating"] = 0
        self.store.replace(r.JOBS, job)


def _condition_true(obj: Obj, type_: str) -> bool:
    return any(
        c["type"] == type_ and c["status"] == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _pod_ready(pod: Obj) -> bool:
    return pod["status"].get("phase") == "Running" and _condition_true(pod, "Ready")


def _restarts(pod: Obj) -> int:
    return sum(
        int(c.get("restartCount", 0))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


def pod_index(pod: Obj) -> int | None:
    """The completion index of an Indexed Job's Pod (annotation, else label), or None."""
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(INDEX_KEY) or (meta.get("labels") or {}).get(
        INDEX_KEY
    )
    return int(raw) if raw is not None and str(raw).isdigit() else None


def _exit_codes_match(rule: Obj, pod: Obj) -> tuple[bool, str, int]:
    """Whether an ``onExitCodes`` requirement holds: (matched, container, exit code)."""
    name, operator = rule.get("containerName"), rule.get("operator", "In")
    values = {int(v) for v in rule.get("values") or []}
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if name and status.get("name") != name:
            continue
        code = ((status.get("state") or {}).get("terminated") or {}).get("exitCode")
        if code is None:
            continue
        if (operator == "In" and code in values) or (
            operator == "NotIn" and code != 0 and code not in values
        ):
            return True, str(status.get("name", "")), int(code)
    return False, "", 0


def policy_verdict(job: Obj, pod: Obj) -> tuple[str, str]:
    """What ``spec.podFailurePolicy`` says about a failed Pod: (action, message).

    Rules are tried in order and the first that matches decides: ``onExitCodes`` (any
    container, or ``containerName``; ``In`` a value, or ``NotIn`` the values and non-zero)
    or ``onPodConditions`` (a condition of that type and status, default True). Actions:
    FailJob (the Job fails at once, reason PodFailurePolicy), Ignore (not counted towards
    ``backoffLimit``, replaced), Count (the default without a match), FailIndex (Indexed
    Jobs with ``backoffLimitPerIndex``: the index fails at once).
    """
    rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
    meta = pod.get("metadata") or {}
    who = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    for i, rule in enumerate(rules):
        action = rule.get("action", "Count")
        if rule.get("onExitCodes"):
            matched, container, code = _exit_codes_match(rule["onExitCodes"], pod)
            if matched:
                return action, (
                    f"Container {container} for pod {who} failed with exit code {code} "
                    f"matching {action} rule at index {i}"
                )
            continue
        for wanted in rule.get("onPodConditions") or []:
            if any(
                c.get("type") == wanted.get("type")
                and c.get("status") == wanted.get("status", "True")
                for c in (pod.get("status") or {}).get("conditions") or []
            ):
                return action, (
                    f"Pod {who} has condition {wanted.get('type')} matching {action} rule "
                    f"at index {i}"
                )
    return "Count", ""


def compress_indexes(indexes: set[int]) -> str:
    """Upstream's interval notation: ``{0, 1, 2, 4}`` -> ``"0-2,4"``.

    >>> compress_indexes({4, 0, 1, 2, 7, 8})
    '0-2,4,7-8'
    """
    parts: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


class _IndexProgress:
    """Where an Indexed Job stands per completion index."""

    def __init__(
        self,
        job: Obj,
        succeeded: list[Obj],
        counted: list[Obj],
        active: list[Obj],
        verdicts: list[tuple[Obj, tuple[str, str]]],
    ) -> None:
        spec = job["spec"]
        self.completions = int(spec.get("completions", 1))
        self.parallelism = int(spec.get("parallelism", 1))
        self.per_index = spec.get("backoffLimitPerIndex")
        self.max_failed = spec.get("maxFailedIndexes")
        self.completed = {i for p in succeeded if (i := pod_index(p)) is not None}
        self.completed &= set(range(self.completions))
        self.failures: dict[int, list[Obj]] = {}
        for pod in counted:
            index = pod_index(pod)
            if index is not None:
                self.failures.setdefault(index, []).append(pod)
        self.running = {i for p in active if (i := pod_index(p)) is not None}
        self.restarts = {pod_index(p): _restarts(p) for p in active}
        self.failed: set[int] = set()
        if self.per_index is not None:
            for index, pods in self.failures.items():
                total = len(pods) + self.restarts.get(index, 0)
                if index not in self.completed and total > int(self.per_index):
                    self.failed.add(index)
            for pod, (action, _) in verdicts:
                index = pod_index(pod)
                if action == "FailIndex" and index is not None and index not in self.completed:
                    self.failed.add(index)

    def failed_of(self, index: int) -> list[Obj]:
        """The counted failed Pods that set an index's back-off (its own with a per-index
        limit, else every failure of the Job, as upstream)."""
        if self.per_index is not None:
            return self.failures.get(index, [])
        return [p for pods in self.failures.values() for p in pods]

    def to_start(self, active: int) -> list[int]:
        """Indexes to create Pods for now, lowest first, up to ``parallelism``."""
        pending = [
            i
            for i in range(self.completions)
            if i not in self.completed and i not in self.failed and i not in self.running
        ]
        return pending[: max(0, self.parallelism - active)]

    def verdict(self) -> tuple[str, str, str] | None:
        if self.max_failed is not None and len(self.failed) > int(self.max_failed):
            return (
                "fail",
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            )
        if len(self.completed | self.failed) < self.completions or self.running - self.failed:
            return None
        if self.failed:
            return "fail", "FailedIndexes", "Job has failed indexes"
        return "complete", "CompletionsReached", ""

    def write(self, status: Obj) -> None:
        for key, indexes in (("completedIndexes", self.completed), ("failedIndexes", self.failed)):
            if key == "failedIndexes" and self.per_index is None:
                continue
            status[key] = compress_indexes(indexes)
