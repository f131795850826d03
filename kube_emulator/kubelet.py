"""The simulated kubelet: starts bound Pods, runs them for a while, ends them, writes logs.

How a Pod behaves is read from annotations (on the Pod, else on its owning Job) or, failing
both, from env vars of its first container; a malformed value falls back to the default:

- ``karimasu.io/sim-duration-seconds`` / ``KARIMASU_SIM_DURATION_SECONDS``: run time in
  seconds (default 30); ``inf`` runs until stopped (daemons, the nodes file's foreign Pods).
- ``karimasu.io/sim-exit-code`` / ``KARIMASU_SIM_EXIT_CODE``: exit code of a run (default 0).
- ``karimasu.io/sim-oom-killed`` / ``KARIMASU_SIM_OOM_KILLED``: ``"true"`` ends a failing run as
  ``OOMKilled`` with exit code 137, and on its own makes runs fail (default false).
- ``karimasu.io/sim-fail-attempts`` / ``KARIMASU_SIM_FAIL_ATTEMPTS``: N > 0 makes the first N
  runs of the Job fail (with the exit code, or 1) and later runs succeed; 0 (default) makes
  every run end as the exit code says.
- ``karimasu.io/sim-gpu-utilization`` / ``KARIMASU_SIM_GPU_UTILIZATION``: a number or profile
  name, stored for the telemetry simulation and not interpreted here (default None).
- ``karimasu.io/sim-fail-indexes`` / ``KARIMASU_SIM_FAIL_INDEXES``: ``"1,3"`` makes the Pods of
  those completion indexes of an Indexed Job fail (with the exit code, or 1) and the others
  succeed (default: none).

An image whose reference contains ``does-not-exist`` never pulls: the container waits with
``ErrImagePull``, one simulated second later ``ImagePullBackOff`` (where it stays, without
upstream's alternation), and the Pod stays Pending.

A Pod annotated ``emulator.karimasu.io/run: process`` (or ``workspace``) runs as a real local
process instead (:mod:`.processes`): it is Running once started and Ready once its declared
ports listen, ends with the process's own exit code, gets SIGTERM when deleted (SIGKILL when
its grace runs out) and logs what the process writes.

A running simulated Pod logs one header line, one ``epoch`` line per simulated second, and a
final line when it ends.

Restarts (restartPolicy Always, or OnFailure after a non-zero exit) follow the kubelet's
CrashLoopBackOff: the container waits with reason ``CrashLoopBackOff`` (the Pod stays Running,
not Ready; ``restartCount`` grows, ``lastState`` is the run that ended) for 10 s, then 20 s,
40 s... at most 300 s; a run that lasted 10 minutes resets the delay to 10 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import resources as r
from .clock import rfc3339
from .events import EventRecorder
from .jobs import pod_index
from .processes import LocalProcess, ProcessRunner, StartError, run_mode
from .scheduling import GPU, pod_requests
from .store import Store

Obj = dict[str, Any]

ANNOTATIONS = {
    "duration": "karimasu.io/sim-duration-seconds",
    "exit_code": "karimasu.io/sim-exit-code",
    "oom_killed": "karimasu.io/sim-oom-killed",
    "fail_attempts": "karimasu.io/sim-fail-attempts",
    "gpu_utilization": "karimasu.io/sim-gpu-utilization",
    "fail_indexes": "karimasu.io/sim-fail-indexes",
}
ENV_VARS = {
    key: "KARIMASU_SIM_" + name.removeprefix("karimasu.io/sim-").replace("-", "_").upper()
    for key, name in ANNOTATIONS.items()
}
PULL_FAILURE_MARKER = "does-not-exist"
DEFAULT_DURATION = 30.0
PULL_BACKOFF_SECONDS = 1.0  # ErrImagePull shows this long before ImagePullBackOff
CRASH_BACKOFF_SECONDS = 10.0  # the kubelet's first restart delay, doubled per restart...
CRASH_BACKOFF_MAX_SECONDS = 300.0  # ...up to this
CRASH_BACKOFF_RESET_SECONDS = 600.0  # a run this long resets the delay


@dataclass(frozen=True)
class SimulationParams:
    """How a simulated container run behaves (see the module docstring)."""

    duration_seconds: float = DEFAULT_DURATION
    exit_code: int = 0
    oom_killed: bool = False
    fail_attempts: int = 0
    gpu_utilization: str | None = None
    fail_indexes: frozenset[int] = frozenset()

    def outcome(self, attempt: int, index: int | None = None) -> tuple[int, str]:
        """(exit code, container termination reason) of run number ``attempt`` (from 1) of
        the Pod of completion ``index`` (None: not an Indexed Job's)."""
        if self.fail_indexes and index is not None:
            failing = index in self.fail_indexes
        else:
            failing = attempt <= self.fail_attempts or (
                self.fail_attempts == 0 and (self.exit_code != 0 or self.oom_killed)
            )
        if not failing:
            return 0, "Completed"
        if self.oom_killed:
            return 137, "OOMKilled"
        return (self.exit_code or 1), "Error"


def simulation_params(pod: Obj, job: Obj | None) -> SimulationParams:
    """Read the simulation settings of ``pod`` (annotations, then the Job's, then env)."""
    sources: list[dict[str, Any]] = [pod["metadata"].get("annotations") or {}]
    if job is not None:
        sources.append(job["metadata"].get("annotations") or {})
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    env = {e.get("name"): e.get("value") for e in containers[0].get("env") or []}

    def raw(key: str) -> Any:
        for source in sources:
            if ANNOTATIONS[key] in source:
                return source[ANNOTATIONS[key]]
        return env.get(ENV_VARS[key])

    def number(key: str, default: float, cast: type, *, forever: bool = False) -> Any:
        try:
            value = cast(float(raw(key)))
        except (TypeError, ValueError, OverflowError):
            return default
        if forever and value == math.inf:
            return value
        return value if math.isfinite(value) and value >= 0 else default

    utilization = raw("gpu_utilization")
    indexes = frozenset(
        int(part) for part in str(raw("fail_indexes") or "").split(",") if part.strip().isdigit()
    )
    return SimulationParams(
        duration_seconds=number("duration", DEFAULT_DURATION, float, forever=True),
        exit_code=number("exit_code", 0, int),
        oom_killed=str(raw("oom_killed")).lower() in ("true", "1", "yes"),
        fail_attempts=number("fail_attempts", 0, int),
        gpu_utilization=None if utilization is None else str(utilization),
        fail_indexes=indexes,
    )


@dataclass
class PodRun:
    """The kubelet's memory of the current run of a Pod's (first) container."""

    started_at: float
    params: SimulationParams
    attempt: int
    node: str
    gpus: int
    finished_at: float | None = None
    exit_code: int | None = None
    restart_at: float | None = None  # CrashLoopBackOff: when the container starts again
    backoff: float = 0.0  # the delay before this run's restart (0: none yet)
    process: LocalProcess | None = None  # a Pod run as a local process: its current run
    ready: bool = False  # a process run: its declared ports listened once


def _condition(type_: str, status: str, now: str, reason: str = "") -> Obj:
    condition = {"type": type_, "status": status, "lastTransitionTime": now, "lastProbeTime": None}
    if reason:
        condition["reason"] = reason
    return condition


def set_condition(pod: Obj, condition: Obj) -> None:
    """Replace the pod condition of the same type (keeping its transition time if unchanged)."""
    conditions = pod["status"].setdefault("conditions", [])
    for i, old in enumerate(conditions):
        if old["type"] == condition["type"]:
            if old.get("status") == condition["status"]:
                condition["lastTransitionTime"] = old.get("lastTransitionTime")
            conditions[i] = condition
            return
    conditions.append(condition)


def container_status(container: Obj, state: Obj, *, ready: bool, restarts: int = 0) -> Obj:
    """A containerStatuses[] entry with the fields the client requires."""
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "containerID": f"containerd://{container['name']}-{restarts}",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restarts,
        "state": state,
        "lastState": {},
    }


class Kubelet:
    """Advances Pods bound to Ready nodes; one instance serves every node."""

    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self.store = store
        self.recorder = recorder
        self.runs: dict[str, PodRun] = {}
        self.pull_failures: dict[str, float] = {}  # pod uid -> first failed pull
        self.processes = ProcessRunner(store.clock.now)

    def sync(self, pod: Obj, job: Obj | None, job_failures: int) -> None:
        """Move one bound, non-terminal Pod forward to the clock's now."""
        now = self.store.clock.now()
        status = pod["status"]
        containers = pod["spec"]["containers"]
        uid = pod["metadata"]["uid"]
        if status.get("phase") == "Pending":
            image = containers[0].get("image", "")
            if any(PULL_FAILURE_MARKER in c.get("image", "") for c in containers):
                self._pull_failure(pod, image)
                return
            self._start(pod, job, now, attempt=job_failures + 1)
            return
        run = self.runs.get(uid)
        if run is None:  # state lost (cannot happen within one process); restart the clock
            self._start(pod, job, now, attempt=job_failures + 1)
            return
        if run.restart_at is not None:
            meta = pod["metadata"]
            if run_mode(pod) is not None and meta.get("deletionTimestamp"):
                # Nothing runs and a Pod being deleted starts nothing: it goes now.
                if not meta.get("finalizers"):
                    self.store.delete(r.PODS, meta.get("namespace"), meta["name"])
                return
            if now >= run.restart_at:
                self._start(pod, job, run.restart_at, attempt=run.attempt + 1, backoff=run.backoff)
            return
        if run_mode(pod) is not None:
            self._sync_process(pod, run, job, now)
            return
        if now < run.started_at + run.params.duration_seconds:
            return
        self._finish(pod, run, job)

    def _pull_failure(self, pod: Obj, image: str) -> None:
        current = (pod["status"].get("containerStatuses") or [{}])[0]
        now = self.store.clock.now()
        failed_at = self.pull_failures.setdefault(pod["metadata"]["uid"], now)
        first = now < failed_at + PULL_BACKOFF_SECONDS
        reason = "ErrImagePull" if first else "ImagePullBackOff"
        if current.get("state", {}).get("waiting", {}).get("reason") == reason:
            return
        message = (
            f'failed to pull and unpack image "{image}": not found'
            if first
            else f'Back-off pulling image "{image}"'
        )
        statuses = [
            container_status(c, {"waiting": {"reason": reason, "message": message}}, ready=False)
            for c in pod["spec"]["containers"]
        ]
        pod["status"]["containerStatuses"] = statuses
        self.store.replace(r.PODS, pod)
        self.recorder.record(
            pod,
            "Failed" if first else "BackOff",
            message,
            type_="Warning",
        )

    def _start(
        self, pod: Obj, job: Obj | None, now: float, attempt: int, backoff: float = 0.0
    ) -> None:
        params = simulation_params(pod, job)
        gpus = int(pod_requests(pod).get(GPU, 0))
        node = pod["spec"]["nodeName"]
        run = PodRun(now, params, attempt, node, gpus, backoff=backoff)
        self.runs[pod["metadata"]["uid"]] = run
        failed_start = None
        if run_mode(pod) is not None:
            try:
                run.process = self.processes.start(pod["metadata"]["uid"], pod)
            except StartError as exc:
                failed_start = str(exc)
        stamp = rfc3339(now)
        status = pod["status"]
        previous = (status.get("containerStatuses") or [{}])[0]
        restarts, last_state = previous.get("restartCount", 0), previous.get("lastState") or {}
        if status.get("phase") == "Pending":
            host, ip = ("127.0.0.1", "127.0.0.1") if run_mode(pod) else ("10.0.0.1", "10.1.0.1")
            status.update(
                phase="Running", startTime=stamp, hostIP=host, podIP=ip, podIPs=[{"ip": ip}]
            )
            restarts, last_state = 0, {}
        ready = run.process is None and failed_start is None
        status["containerStatuses"] = [
            container_status(c, {"running": {"startedAt": stamp}}, ready=ready, restarts=restarts)
            for c in pod["spec"]["containers"]
        ]
        status["containerStatuses"][0]["lastState"] = last_state
        set_condition(pod, _condition("Initialized", "True", stamp))
        for type_ in ("ContainersReady", "Ready"):
            if ready:
                set_condition(pod, _condition(type_, "True", stamp))
            else:
                set_condition(pod, _condition(type_, "False", stamp, "ContainersNotReady"))
        self.store.replace(r.PODS, pod)
        name = pod["spec"]["containers"][0]["name"]
        if failed_start is not None:
            self.recorder.record(pod, "Failed", f"Error: {failed_start}", type_="Warning")
            self._finish(pod, run, job, outcome=(128, "StartError", now))
            return
        self.recorder.record(pod, "Started", f"Started container {name}")

    def _sync_process(self, pod: Obj, run: PodRun, job: Obj | None, now: float) -> None:
        """A Pod run as a local process: Ready once it listens, ended when the process ends,
        SIGTERM while it is being deleted, removed as soon as the process is gone then."""
        meta = pod["metadata"]
        process = run.process
        code = process.returncode() if process is not None else 137
        deleting = bool(meta.get("deletionTimestamp"))
        if code is None:
            if deleting:
                self.processes.terminate(meta["uid"])
            elif not run.ready and process is not None and process.listening():
                run.ready = True
                stamp = rfc3339(now)
                for entry in pod["status"].get("containerStatuses") or []:
                    entry["ready"] = True
                for type_ in ("ContainersReady", "Ready"):
                    set_condition(pod, _condition(type_, "True", stamp))
                self.store.replace(r.PODS, pod)
            return
        if deleting and not meta.get("finalizers"):
            # The container is gone: the kubelet confirms the deletion at once.
            self.store.delete(r.PODS, meta.get("namespace"), meta["name"])
            return
        reason = "Completed" if code == 0 else "Error"
        self.processes.kill(meta["uid"])  # what the process left running in its group
        self._finish(pod, run, job, outcome=(code, reason, now))

    def _finish(
        self,
        pod: Obj,
        run: PodRun,
        job: Obj | None,
        outcome: tuple[int, str, float] | None = None,
    ) -> None:
        """End the run: as simulated, or with ``outcome`` (exit code, reason, end time)."""
        if outcome is None:
            end = run.started_at + run.params.duration_seconds
            exit_code, reason = run.params.outcome(run.attempt, pod_index(pod))
        else:
            exit_code, reason, end = outcome
        run.finished_at, run.exit_code = end, exit_code
        status, stamp = pod["status"], rfc3339(end)
        previous = status.get("containerStatuses") or [{}]
        restarts = previous[0].get("restartCount", 0)
        terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": rfc3339(run.started_at),
            "finishedAt": stamp,
            "containerID": f"containerd://{pod['spec']['containers'][0]['name']}-{restarts}",
        }
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Always" or (policy == "OnFailure" and exit_code != 0):
            self._back_off(pod, run, terminated, restarts + 1, end)
            return
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        status["containerStatuses"] = [
            container_status(c, {"terminated": terminated}, ready=False, restarts=restarts)
            for c in pod["spec"]["containers"]
        ]
        done = "PodCompleted" if exit_code == 0 else "PodFailed"
        for type_ in ("ContainersReady", "Ready"):
            set_condition(pod, _condition(type_, "False", stamp, done))
        self.store.replace(r.PODS, pod)

    def _back_off(self, pod: Obj, run: PodRun, terminated: Obj, restarts: int, end: float) -> None:
        """The container ended and will be restarted: CrashLoopBackOff until ``restart_at``."""
        lasted = end - run.started_at
        if run.backoff == 0 or lasted >= CRASH_BACKOFF_RESET_SECONDS:
            delay = CRASH_BACKOFF_SECONDS
        else:
            delay = min(run.backoff * 2, CRASH_BACKOFF_MAX_SECONDS)
        run.backoff, run.restart_at = delay, end + delay
        name = pod["spec"]["containers"][0]["name"]
        meta = pod["metadata"]
        message = (
            f"back-off {delay:g}s restarting failed container={name} "
            f"pod={meta['name']}_{meta['namespace']}({meta['uid']})"
        )
        status, stamp = pod["status"], rfc3339(end)
        statuses = []
        for i, container in enumerate(pod["spec"]["containers"]):
            state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            entry = container_status(container, state, ready=False, restarts=restarts)
            entry["lastState"] = {"terminated": terminated} if i == 0 else {}
            statuses.append(entry)
        status["containerStatuses"] = statuses
        for type_ in ("ContainersReady", "Ready"):
            set_condition(pod, _condition(type_, "False", stamp, "ContainersNotReady"))
        self.store.replace(r.PODS, pod)
        self.recorder.record(
            pod,
            "BackOff",
            f"Back-off restarting failed container {name} in pod {meta['name']}",
            type_="Warning",
        )

    def fail_lost(self, pod: Obj, node_name: str, *, by: str = "DeletionByPodGC") -> None:
        """Mark a Pod on a lost node Failed, reason NodeLost, with condition DisruptionTarget
        (reason ``by``: the pod GC, or the taint eviction controller)."""
        now = self.store.clock.now()
        stamp = rfc3339(now)
        status = pod["status"]
        status["phase"] = "Failed"
        status["reason"] = "NodeLost"
        status["message"] = (
            f"Node {node_name} which was running pod {pod['metadata']['name']} is unresponsive"
        )
        restarts = (status.get("containerStatuses") or [{}])[0].get("restartCount", 0)
        terminated = {
            "exitCode": 137,
            "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated",
            "finishedAt": stamp,
        }
        status["containerStatuses"] = [
            container_status(c, {"terminated": terminated}, ready=False, restarts=restarts)
            for c in pod["spec"]["containers"]
        ]
        disruption = _condition("DisruptionTarget", "True", stamp, by)
        if by == "DeletionByTaintManager":
            disruption["message"] = "Taint manager: deleting due to NoExecute taint"
        set_condition(pod, disruption)
        set_condition(pod, _condition("Ready", "False", stamp, "PodFailed"))
        run = self.runs.get(pod["metadata"]["uid"])
        if run is not None and run.finished_at is None:
            run.finished_at, run.exit_code = now, 137
        self.processes.kill(pod["metadata"]["uid"])
        self.store.replace(r.PODS, pod)

    def log_lines(self, pod: Obj) -> tuple[list[tuple[float, str]], bool]:
        """The current container log of ``pod`` as (time, line) pairs, and whether it ended.

        Empty before the Pod starts. Only the current run's log is kept (no ``previous``).
        """
        run = self.runs.get(pod["metadata"]["uid"])
        if run is None:
            return [], False
        if run.process is not None:
            return run.process.log(), run.exit_code is not None
        name = pod["metadata"]["name"]
        params = run.params
        lines = [
            (
                run.started_at,
                f"[karimasu-sim] {name} on {run.node}: {run.gpus} GPU(s), run {run.attempt}, "
                f"planned {params.duration_seconds:g}s",
            )
        ]
        end = run.finished_at if run.finished_at is not None else self.store.clock.now()
        end = min(end, run.started_at + params.duration_seconds)
        total = (
            max(1, math.ceil(params.duration_seconds))
            if math.isfinite(params.duration_seconds)
            else "inf"
        )
        for second in range(1, int(end - run.started_at) + 1):
            loss = 2.5 / (1 + 0.15 * second)
            lines.append((run.started_at + second, f"epoch {second}/{total} loss={loss:.4f}"))
        if run.exit_code is not None:
            lines.append((end, f"[karimasu-sim] {name} finished with exit code {run.exit_code}"))
        return lines, run.exit_code is not None

    def forget_missing(self, live_uids: set[str]) -> None:
        """Drop run records of deleted Pods."""
        for uid in set(self.runs) - live_uids:
            del self.runs[uid]
        for uid in set(self.pull_failures) - live_uids:
            del self.pull_failures[uid]
        self.processes.forget_missing(live_uids)
