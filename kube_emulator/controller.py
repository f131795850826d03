"""The control loop of the emulated cluster: garbage collector, Job controller, scheduler, kubelet.

:meth:`ClusterController.step` runs each of them once over the current state, at the clock's
``now``, holding the store lock so the pass is atomic with respect to API writes.
:meth:`~ClusterController.settle` repeats steps until nothing changes, which is what a test calls
after moving a :class:`~.clock.FakeClock`. In real-time mode a ticker thread calls ``step``.

The node control surface (``lose_node``, ``remove_node``, ``restore_node``) plays what happens
outside the API: a server that stops answering, or is taken away.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from . import dra
from . import resources as r
from .admission import NOT_READY_TAINT, UNREACHABLE_TAINT, admit_new_pod
from .clock import Clock, parse_rfc3339, rfc3339
from .daemonsets import DaemonSetController, prepare_daemonset
from .deletion import finish_deletions
from .events import EventRecorder
from .jobs import OWNER_LABEL, JobController, collect_garbage, owned_pods
from .kubelet import Kubelet, SimulationParams, simulation_params
from .nodes import SYSTEM_NAMESPACES, ClusterSpec, namespace_object, ready_condition
from .scheduling import (
    GPU,
    choose_node,
    filter_reasons,
    is_terminal,
    node_usage,
    pod_requests,
    tolerates,
)
from .store import Store
from .validation import _default_pod_spec

logger = logging.getLogger(__name__)
Obj = dict[str, Any]


def eviction_due(pod: Obj, taints: list[Obj], now: float) -> bool:
    """True when one of the node's NoExecute ``taints`` evicts ``pod`` at ``now``: a taint no
    toleration matches evicts at once; otherwise the least ``tolerationSeconds`` of the
    matching tolerations counts from the taint's ``timeAdded`` (none set: tolerated forever)."""
    tolerations = pod["spec"].get("tolerations") or []
    for taint in taints:
        matching = [t for t in tolerations if tolerates([t], taint)]
        if not matching:
            return True
        seconds = [
            t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None
        ]
        if not seconds:
            continue
        added = taint.get("timeAdded")
        start = parse_rfc3339(added) if added else now
        if now >= start + max(0, min(seconds)):
            return True
    return False


def _condition_true(obj: Obj, type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _on_node(name: str) -> Callable[[Obj], bool]:
    def on_node(pod: Obj) -> bool:
        return bool(pod["spec"].get("nodeName") == name)

    return on_node


def _pods_by_owner(pods: list[Obj]) -> dict[str, list[Obj]]:
    """Pods grouped by their owning Job's uid (the controller-uid label), in list order."""
    grouped: dict[str, list[Obj]] = {}
    for pod in pods:
        uid = (pod["metadata"].get("labels") or {}).get(OWNER_LABEL)
        if uid:
            grouped.setdefault(uid, []).append(pod)
    return grouped


def _shape(pod: Obj) -> str:
    """What scheduling a pod depends on, so pods of one template are evaluated once."""
    spec = pod["spec"]
    return json.dumps(
        [
            spec.get(k)
            for k in ("nodeSelector", "affinity", "tolerations", "containers", "initContainers")
        ],
        sort_keys=True,
        default=str,
    )


class ClusterController:
    """Everything in the cluster that is not the API server. Thread-safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.recorder = EventRecorder(store)
        self.kubelet = Kubelet(store, self.recorder)
        self.jobs = JobController(store, self.recorder)
        self.daemonsets = DaemonSetController(store, self.recorder)
        self._scheduling_messages: dict[str, str] = {}
        self._ticker: threading.Thread | None = None
        self._ticker_stop = threading.Event()

    @property
    def clock(self) -> Clock:
        return self.store.clock

    def seed(self, spec: ClusterSpec) -> None:
        """Create the system namespaces, the file's namespaces, its nodes, DaemonSets and
        Pods, and settle once so the daemon and foreign Pods hold their resources before any
        client looks."""
        stamp = rfc3339(self.clock.now())
        with self.store.lock:
            for name in (*SYSTEM_NAMESPACES, *spec.namespaces):
                if self.store.find(r.NAMESPACES, None, name) is None:
                    self.store.create(r.NAMESPACES, namespace_object(name))
            for node in spec.nodes:
                for condition in node["status"]["conditions"]:
                    condition.setdefault("lastHeartbeatTime", stamp)
                    condition.setdefault("lastTransitionTime", stamp)
                self.store.create(r.NODES, node)
                slice_ = dra.resource_slice(node)
                if node["metadata"]["name"] in spec.dra_nodes and slice_ is not None:
                    self.store.create(
                        r.RESOURCESLICES,
                        {**slice_, "metadata": {**slice_["metadata"], "uid": str(uuid.uuid4())}},
                    )
            if spec.dra_nodes:
                device_class = dra.device_class()
                device_class["metadata"]["uid"] = str(uuid.uuid4())
                self.store.create(r.DEVICECLASSES, device_class)
            for daemonset in spec.daemonsets:
                meta = daemonset["metadata"]
                meta["uid"] = str(uuid.uuid4())
                prepare_daemonset(daemonset)
                self.store.create(r.DAEMONSETS, daemonset)
            for pod in spec.pods:
                spec_ = pod["spec"]
                _default_pod_spec(spec_, restart_default="Always")
                self.store.create(r.PODS, admit_new_pod(pod))
        if spec.daemonsets or spec.pods:
            self.settle()

    # -- the loop ----------------------------------------------------------------------------

    def step(self) -> bool:
        """Run one pass of every controller; True when it wrote anything."""
        with self.store.lock:
            before = self.store.resource_version
            finish_deletions(self.store)
            collect_garbage(self.store)
            dra.release(self.store)
            self._evict_by_taints()
            nodes = self.store.list(r.NODES)
            for daemonset in self.store.list(r.DAEMONSETS):
                self.daemonsets.sync(daemonset, nodes, self.store.list(r.PODS))
            pods_of = _pods_by_owner(self.store.list(r.PODS))
            for job in self.store.list(r.JOBS):
                self.jobs.sync(job, pods_of.get(job["metadata"]["uid"], []))
            self._schedule()
            self._run_kubelets()
            live = self.store.uids(r.PODS)
            self.kubelet.forget_missing(live)
            for uid in set(self._scheduling_messages) - live:
                del self._scheduling_messages[uid]
            return self.store.resource_version != before

    def settle(self, max_rounds: int = 100) -> int:
        """Step until a pass changes nothing (at most ``max_rounds``); returns the passes run."""
        for rounds in range(1, max_rounds + 1):
            if not self.step():
                return rounds
        return max_rounds

    def _schedule(self) -> None:
        nodes = self.store.list(r.NODES)
        pods = self.store.list(r.PODS)
        pending = [
            p
            for p in pods
            if not p["spec"].get("nodeName") and p["status"].get("phase") == "Pending"
        ]
        pending.sort(
            key=lambda p: (
                p["metadata"]["creationTimestamp"],
                int(p["metadata"]["resourceVersion"]),
            )
        )
        # Usage per node once per pass (kept current as pods bind), and one evaluation per pod
        # shape until something binds: 1,000 pending pods must not cost 1,000 x nodes x pods.
        usage = {n["metadata"]["name"]: node_usage(n["metadata"]["name"], pods) for n in nodes}
        for name, held in dra.gpu_usage_by_node(self.store).items():
            if name in usage:
                usage[name][GPU] = usage[name].get(GPU, Fraction(0)) + held
        failed: dict[str, str] = {}
        for pod in pending:
            shape = _shape(pod)
            placement = dra.place(self.store, pod, [n["metadata"]["name"] for n in nodes], pods)
            if placement.nodes is not None:  # claims decide: no shape shortcut
                shape = ""
                allowed = [n for n in nodes if n["metadata"]["name"] in placement.nodes]
                node_name, message = (
                    choose_node(pod, allowed, pods, usage) if allowed else (None, placement.message)
                )
                if node_name is None and allowed:
                    message = placement.message or message
            elif shape in failed:
                node_name, message = None, failed[shape]
            else:
                node_name, message = choose_node(pod, nodes, pods, usage)
            uid = pod["metadata"]["uid"]
            if node_name is None:
                if shape:
                    failed[shape] = message
                if self._scheduling_messages.get(uid) != message:
                    self._scheduling_messages[uid] = message
                    pod["status"]["conditions"] = [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                            "lastProbeTime": None,
                            "lastTransitionTime": rfc3339(self.clock.now()),
                        }
                    ]
                    self.store.replace(r.PODS, pod)
                    self.recorder.record(
                        pod,
                        "FailedScheduling",
                        message,
                        type_="Warning",
                        component="default-scheduler",
                    )
                continue
            self._scheduling_messages.pop(uid, None)
            pod["spec"]["nodeName"] = node_name
            self._mark_scheduled(pod)
            used = usage[node_name]
            if placement.claims:
                indices = dra.allocate(self.store, pod, node_name, placement.claims, pods)
                # Where the simulated node agent shows the pod's processes: the devices the
                # driver prepared (what its CDI spec gives the container).
                annotations = pod["metadata"].setdefault("annotations", {})
                annotations[dra.INDICES_KEY] = ",".join(str(i) for i in indices)
                used[GPU] = used.get(GPU, Fraction(0)) + len(indices)
            bound = self.store.replace(r.PODS, pod)
            for resource, amount in [*pod_requests(pod).items(), ("pods", Fraction(1))]:
                used[resource] = used.get(resource, Fraction(0)) + amount
            failed.clear()
            self.recorder.record(
                bound,
                "Scheduled",
                f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']}"
                f" to {node_name}",
                component="default-scheduler",
            )

    def _mark_scheduled(self, pod: Obj) -> None:
        pod["status"]["conditions"] = [
            c for c in pod["status"].get("conditions") or [] if c.get("type") != "PodScheduled"
        ] + [
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(self.clock.now()),
            }
        ]

    def _run_kubelets(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.store.list(r.NODES)}
        jobs = {j["metadata"]["uid"]: j for j in self.store.list(r.JOBS)}
        pods = self.store.list(r.PODS)
        pods_of = _pods_by_owner(pods)
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"]):
            node = nodes.get(pod["spec"].get("nodeName") or "")
            if node is None or is_terminal(pod) or not _condition_true(node, "Ready"):
                continue
            job = next(
                (
                    jobs[o["uid"]]
                    for o in pod["metadata"].get("ownerReferences") or []
                    if o.get("uid") in jobs
                ),
                None,
            )
            if not _condition_true(pod, "PodScheduled") and not self._admit(pod, node, pods):
                continue
            failures = 0
            if job is not None:
                failures = sum(
                    1
                    for p in owned_pods(job, pods_of.get(job["metadata"]["uid"], []))
                    if p["status"].get("phase") == "Failed"
                )
            self.kubelet.sync(pod, job, failures)

    def _admit(self, pod: Obj, node: Obj, pods: list[Obj]) -> bool:
        """Kubelet admission of a Pod created with ``spec.nodeName`` set (no scheduler)."""
        others = [
            p
            for p in pods
            if p["metadata"]["uid"] != pod["metadata"]["uid"] and _condition_true(p, "PodScheduled")
        ]
        used = node_usage(node["metadata"]["name"], others)
        short = [
            x.removeprefix("Insufficient ")
            for x in filter_reasons(pod, node, used)
            if x.startswith("Insufficient ")
        ]
        if short:
            resource = short[0]
            request = pod_requests(pod).get(resource, 0)
            capacity = ((node.get("status") or {}).get("allocatable") or {}).get(resource, "0")
            pod["status"].update(
                phase="Failed",
                reason=f"OutOf{resource}",
                message=(
                    f"Pod was rejected: Node didn't have enough resource: {resource}, "
                    f"requested: {request}, used: {used.get(resource, 0)}, capacity: {capacity}"
                ),
            )
            self.store.replace(r.PODS, pod)
            return False
        self._mark_scheduled(pod)
        pod.update(self.store.replace(r.PODS, pod))
        return True

    # -- node control surface ---------------------------------------------------------------

    def lose_node(self, name: str, *, condition: str = "Unknown") -> None:
        """The node stops answering (``condition="Unknown"``, taint ``unreachable``) or reports
        NotReady (``"False"``, taint ``not-ready``).

        As the node lifecycle controller does, the node gets the taint with both effects:
        NoSchedule keeps new Pods off, NoExecute (stamped ``timeAdded``) makes the taint
        eviction controller evict the Pods there that do not tolerate it, each after its
        toleration's ``tolerationSeconds`` (300 s from DefaultTolerationSeconds), at once when
        none tolerates it, never when the toleration has no ``tolerationSeconds``.
        """
        key = UNREACHABLE_TAINT if condition == "Unknown" else NOT_READY_TAINT
        with self.store.lock:
            node = self.store.get(r.NODES, None, name)
            stamp = rfc3339(self.clock.now())
            node["status"]["conditions"] = [ready_condition(False, stamp, status=condition)]
            taints = [
                t
                for t in node["spec"].get("taints") or []
                if t.get("key") not in (UNREACHABLE_TAINT, NOT_READY_TAINT)
            ]
            taints += [
                {"key": key, "effect": "NoSchedule"},
                {"key": key, "effect": "NoExecute", "timeAdded": stamp},
            ]
            node["spec"]["taints"] = taints
            self.store.replace(r.NODES, node)
            self._evict_by_taints()

    def remove_node(self, name: str) -> None:
        """Delete the Node object (the server is gone for good); its Pods fail at once
        (NodeLost, as the pod GC fails the Pods of a node that no longer exists)."""
        with self.store.lock:
            self.store.delete(r.NODES, None, name)
            self._fail_pods_on(name)

    def restore_node(self, name: str) -> None:
        """A lost node answers again: Ready=True, the unreachable/not-ready taints removed."""
        with self.store.lock:
            node = self.store.get(r.NODES, None, name)
            node["status"]["conditions"] = [ready_condition(True, rfc3339(self.clock.now()))]
            node["spec"]["taints"] = [
                t
                for t in node["spec"].get("taints") or []
                if t.get("key") not in (UNREACHABLE_TAINT, NOT_READY_TAINT)
            ]
            if not node["spec"]["taints"]:
                del node["spec"]["taints"]
            self.store.replace(r.NODES, node)

    def _evict_by_taints(self) -> None:
        """The taint eviction controller: Pods on nodes with NoExecute taints they do not
        tolerate (or no longer: ``tolerationSeconds`` ran out) are evicted. Graceful deletion
        is not modelled: the Pod fails at once with ``DisruptionTarget``
        (``DeletionByTaintManager``), as the pod GC leaves it when the node cannot confirm."""
        now = self.clock.now()
        for node in self.store.list(r.NODES):
            spec = node.get("spec") or {}
            taints = [t for t in spec.get("taints") or [] if t.get("effect") == "NoExecute"]
            if not taints:
                continue
            name = node["metadata"]["name"]
            for pod in self.store.list(r.PODS, predicate=_on_node(name)):
                if not is_terminal(pod) and eviction_due(pod, taints, now):
                    meta = pod["metadata"]
                    self.recorder.record(
                        pod,
                        "TaintManagerEviction",
                        f"Marking for deletion Pod {meta['namespace']}/{meta['name']}",
                        component="taint-eviction-controller",
                    )
                    self.kubelet.fail_lost(pod, name, by="DeletionByTaintManager")

    def _fail_pods_on(self, node_name: str) -> None:
        for pod in self.store.list(
            r.PODS, predicate=lambda p: p["spec"].get("nodeName") == node_name
        ):
            if not is_terminal(pod):
                self.kubelet.fail_lost(pod, node_name)

    # -- what the server and the telemetry read -----------------------------------------------

    def log_lines(self, pod: Obj) -> tuple[list[tuple[float, str]], bool]:
        """The container log of ``pod`` and whether it ended (see ``Kubelet.log_lines``)."""
        with self.store.lock:
            return self.kubelet.log_lines(pod)

    def simulation_params(self, namespace: str, pod_name: str) -> SimulationParams:
        """The simulation settings in force for a Pod (GPU utilization for telemetry, ...)."""
        with self.store.lock:
            pod = self.store.get(r.PODS, namespace, pod_name)
            owner = next(iter(pod["metadata"].get("ownerReferences") or []), None)
            job = self.store.find(r.JOBS, namespace, owner["name"]) if owner else None
            return simulation_params(pod, job)

    # -- real-time mode ------------------------------------------------------------------------

    def start_ticker(self, interval: float = 0.2) -> None:
        """Call :meth:`step` every ``interval`` seconds in a daemon thread until stopped."""
        if self._ticker is not None:
            return
        self._ticker_stop.clear()

        def run() -> None:
            while not self._ticker_stop.wait(interval):
                try:
                    self.step()
                except Exception:  # a bug in one pass must not stop the simulated cluster
                    logger.exception("emulator controller step failed")

        self._ticker = threading.Thread(target=run, name="k8s-emulator-ticker", daemon=True)
        self._ticker.start()

    def stop_ticker(self) -> None:
        """Stop the ticker thread (no-op when none runs)."""
        if self._ticker is not None:
            self._ticker_stop.set()
            self._ticker.join(timeout=5)
            self._ticker = None
