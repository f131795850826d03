"""The simulated Job controller, TTL controller and garbage collector (batch/v1 semantics).

Per Job (``completions``/``parallelism`` as for NonIndexed Jobs):

- creates Pods ``<job>-<5 chars>`` from the template, labelled with ``job-name``,
  ``controller-uid`` (and their ``batch.kubernetes.io/`` forms), owned by the Job;
- counts ``active``/``ready``/``succeeded``/``failed`` (zero counts are omitted, as upstream);
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
from .admission import admit_new_pod
from .clock import parse_rfc3339, rfc3339
from .errors import bad_request
from .events import EventRecorder
from .scheduling import is_terminal
from .store import Store
from .validation import random_suffix

Obj = dict[str, Any]
OWNER_LABEL = "batch.kubernetes.io/controller-uid"
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
    """Delete Pods whose owning Job or DaemonSet no longer exists (Background propagation)."""
    live = {obj["metadata"]["uid"] for kind in (r.JOBS, r.DAEMONSETS) for obj in store.list(kind)}
    for pod in store.list(r.PODS):
        owners = [
            o
            for o in pod["metadata"].get("ownerReferences") or []
            if o.get("kind") in ("Job", "DaemonSet")
        ]
        if owners and all(o.get("uid") not in live for o in owners):
            store.delete(r.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])


class JobController:
    """Reconciles every Job with its Pods; called once per controller step."""

    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self.store = store
        self.recorder = recorder

    def sync(self, job: Obj, pods: list[Obj]) -> None:
        """Bring one Job's Pods and status in line with its spec."""
        now = self.store.clock.now()
        spec, status = job["spec"], job.setdefault("status", {})
        finished = finished_at(job)
        if finished is not None:
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None and now >= finished + ttl:
                delete_job(
                    self.store, job["metadata"]["namespace"], job["metadata"]["name"], "Background"
                )
            return
        mine = owned_pods(job, pods)
        active = [p for p in mine if not is_terminal(p)]
        succeeded = sum(1 for p in mine if p["status"].get("phase") == "Succeeded")
        failed_pods = [p for p in mine if p["status"].get("phase") == "Failed"]
        restarts = sum(
            (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) for p in active
        )
        failed = len(failed_pods) + restarts
        if spec.get("suspend"):
            self._delete_pods(active)
            active = []
            status.pop("startTime", None)
            self._set_condition(job, "Suspended", "True", "JobSuspended", "Job suspended", now)
        else:
            if _condition_true(job, "Suspended"):
                self._set_condition(job, "Suspended", "False", "JobResumed", "Job resumed", now)
            status.setdefault("startTime", rfc3339(now))
            started = parse_rfc3339(status["startTime"])
            deadline = spec.get("activeDeadlineSeconds")
            if deadline is not None and now >= started + deadline:
                self._delete_pods(active)
                active = []
                self._fail(
                    job, "DeadlineExceeded", "Job was active longer than specified deadline", now
                )
            elif succeeded >= spec.get("completions", 1):
                self._delete_pods(active)
                active = []
                self._complete(job, now)
            elif failed > spec.get("backoffLimit", 6):
                self._delete_pods(active)
                active = []
                self._fail(
                    job, "BackoffLimitExceeded", "Job has reached the specified backoff limit", now
                )
            else:
                wanted = min(spec.get("parallelism", 1), spec.get("completions", 1) - succeeded)
                if len(active) < wanted and self._backoff_over(failed_pods, now):
                    for _ in range(wanted - len(active)):
                        active.append(self._create_pod(job))
        self._write_status(job, active, succeeded, failed)

    def _backoff_over(self, failed_pods: list[Obj], now: float) -> bool:
        if not failed_pods:
            return True
        ends = [str(_terminated(p).get("finishedAt") or "") for p in failed_pods]
        last = max((parse_rfc3339(e) for e in ends if e), default=now)
        delay = min(BACKOFF_BASE_SECONDS << (len(failed_pods) - 1), BACKOFF_MAX_SECONDS)
        return now >= last + delay

    def _create_pod(self, job: Obj) -> Obj:
        meta, template = job["metadata"], job["spec"]["template"]
        template_meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                "name": f"{meta['name']}-{random_suffix()}",
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": dict(template_meta.get("labels") or {}),
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        created = self.store.create(r.PODS, admit_new_pod(pod))
        self.recorder.record(
            job,
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            component="job-controller",
        )
        return created

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
