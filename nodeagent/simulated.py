"""The simulated source: GPU readings made up from the pods on a node, for the demo and tests.

It reads the node and its pods over the Kubernetes API (the emulator in the demo, any
cluster in principle) with the official client, and answers like NVML would:

- GPU count, model and memory from the node's `nvidia.com/gpu` allocatable and GPU feature
  discovery labels; UUIDs are stable, derived from the node name and index.
- A Running pod that requests GPUs gets indices on this node. The emulator does not assign
  device indices, so the source does, stickily: a pod keeps the indices it got while it runs,
  a new pod gets the lowest free ones; a pod annotation `karimasu.io/gpu-indices: "0,1"`
  (what a device plugin would report) wins when present.
- Utilization follows the pod's declared `karimasu.io/sim-gpu-utilization` (pod annotation,
  else its Job's, else env `KARIMASU_SIM_GPU_UTILIZATION`): a number 0-100 or a profile name
  (`PROFILES`), as a function of seconds since the pod started. No declaration: "training".
- A GPU no running pod holds reads 0% with no processes, whatever is booked on it.
- Foreign use: node annotation `karimasu.io/sim-foreign-gpus: "1,3"` (or the `foreign`
  argument) puts a process outside any pod at 60% on those GPUs.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nodeagent.cgroups import LABEL_ATTEMPT, LABEL_JOB
from nodeagent.readings import GpuReading, NodeReading, ProcessReading

GPU = "nvidia.com/gpu"
UTILIZATION_KEY = "karimasu.io/sim-gpu-utilization"
UTILIZATION_ENV = "KARIMASU_SIM_GPU_UTILIZATION"
INDICES_KEY = "karimasu.io/gpu-indices"
FOREIGN_KEY = "karimasu.io/sim-foreign-gpus"
FOREIGN_UTILIZATION = 60.0
DEFAULT_PROFILE = "training"

Profile = Callable[[float], float]

PROFILES: dict[str, Profile] = {
    "idle": lambda t: 0.0,
    "training": lambda t: 90.0 + 5.0 * math.sin(t / 30.0),
    "busy": lambda t: 97.0,
    "dataloader-bound": lambda t: 35.0 + 15.0 * math.sin(t / 20.0),
    "bursty": lambda t: 95.0 if (t % 120.0) < 60.0 else 3.0,
    "ramp": lambda t: min(100.0, t / 3.0),
}


def utilization(declared: str | None, seconds_running: float) -> float:
    """Percent busy for a declaration (number or profile) after `seconds_running`.

    >>> utilization("42", 10), utilization("idle", 99), utilization("bursty", 61)
    (42.0, 0.0, 3.0)
    """
    text = (declared or DEFAULT_PROFILE).strip()
    try:
        value = float(text)
    except ValueError:
        value = PROFILES.get(text, PROFILES[DEFAULT_PROFILE])(max(0.0, seconds_running))
    if not math.isfinite(value):
        value = 0.0
    return round(min(100.0, max(0.0, value)), 1)


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _pid(uid: str, index: int) -> int:
    return 1000 + zlib.crc32(f"{uid}/{index}".encode()) % 4_000_000


class SimulatedSource:
    name = "simulated"

    def __init__(
        self,
        node: str,
        *,
        kubeconfig: str | None = None,
        api_client: Any = None,
        foreign: dict[int, float] | None = None,
    ) -> None:
        from kubernetes import client

        from scheduler.cluster.kube import api_client as kube_client

        if api_client is None:
            api_client = kube_client(kubeconfig)
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.node = node
        self.foreign = dict(foreign or {})
        self.assigned: dict[str, list[int]] = {}  # pod uid -> GPU indices (sticky)

    def close(self) -> None:
        self.core.api_client.close()

    def _get(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        response = call(*args, _preload_content=False, _request_timeout=5, **kwargs)
        return json.loads(response.data)

    def read(self, now: datetime) -> NodeReading:
        try:
            node = self._get(self.core.read_node, self.node)
            pods = self._get(
                self.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={self.node}"
            )["items"]
        except Exception as exc:
            return NodeReading(at=now, healthy=False, error=f"simulated source: {exc}")
        labels = node["metadata"].get("labels") or {}
        count = int(float((node.get("status") or {}).get("allocatable", {}).get(GPU, 0)))
        memory = float(labels.get("nvidia.com/gpu.memory", 16384))
        gpus = [
            GpuReading(
                index=i,
                uuid=f"GPU-{zlib.crc32(f'{self.node}/{i}'.encode()):08x}-sim0-4000-8000-{i:012d}",
                name=labels.get("nvidia.com/gpu.product", "Simulated GPU"),
                memory_total_mib=memory,
                memory_used_mib=0.0,
                utilization_gpu_pct=0.0,
                utilization_memory_pct=0.0,
                temperature_c=32.0,
                power_draw_w=40.0,
                power_limit_w=300.0,
                ecc_uncorrected=0,
                throttle_reasons=["gpu_idle"],
                processes=[],
            )
            for i in range(count)
        ]
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        self._assign(running, count)
        for pod in running:
            self._apply(pod, gpus, now)
        for index in self._foreign_indices(node):
            if index < count:
                gpu = gpus[index]
                gpu.processes = [*(gpu.processes or []), ProcessReading(pid=_pid("host", index))]
                self._load(gpu, max(gpu.utilization_gpu_pct or 0.0, FOREIGN_UTILIZATION))
                gpu.processes[-1].used_memory_mib = round(memory * 0.2, 1)
                gpu.processes[-1].foreign = True
        return NodeReading(at=now, gpus=gpus)

    def _foreign_indices(self, node: dict[str, Any]) -> list[int]:
        text = (node["metadata"].get("annotations") or {}).get(FOREIGN_KEY, "")
        found = {int(x) for x in text.split(",") if x.strip().isdigit()}
        return sorted(found | set(self.foreign))

    def _assign(self, running: list[dict[str, Any]], count: int) -> None:
        live = {p["metadata"]["uid"]: p for p in running}
        self.assigned = {uid: idx for uid, idx in self.assigned.items() if uid in live}
        ordered = sorted(
            running, key=lambda p: (p["status"].get("startTime") or "", p["metadata"]["name"])
        )
        for pod in ordered:
            uid = pod["metadata"]["uid"]
            declared = (pod["metadata"].get("annotations") or {}).get(INDICES_KEY)
            if declared:
                self.assigned[uid] = [int(x) for x in declared.split(",") if x.strip().isdigit()]
            if uid in self.assigned:
                continue
            wanted = sum(
                int(float(c.get("resources", {}).get("limits", {}).get(GPU, 0)))
                for c in pod["spec"].get("containers", [])
            )
            taken = {i for idx in self.assigned.values() for i in idx}
            free = [i for i in range(count) if i not in taken]
            self.assigned[uid] = free[:wanted]

    def _declared(self, pod: dict[str, Any]) -> str | None:
        notes = pod["metadata"].get("annotations") or {}
        if UTILIZATION_KEY in notes:
            declared: str = notes[UTILIZATION_KEY]
            return declared
        owner = next(iter(pod["metadata"].get("ownerReferences") or []), None)
        if owner and owner.get("kind") == "Job":
            try:
                job = self._get(
                    self.batch.read_namespaced_job, owner["name"], pod["metadata"]["namespace"]
                )
                job_notes = job["metadata"].get("annotations") or {}
                if UTILIZATION_KEY in job_notes:
                    job_declared: str = job_notes[UTILIZATION_KEY]
                    return job_declared
            except Exception:  # noqa: S110 (a Job gone already: fall through to env)
                pass
        containers = pod["spec"].get("containers") or [{}]
        env = {e.get("name"): e.get("value") for e in containers[0].get("env") or []}
        return env.get(UTILIZATION_ENV)

    def _apply(self, pod: dict[str, Any], gpus: list[GpuReading], now: datetime) -> None:
        meta = pod["metadata"]
        started = _epoch(pod["status"].get("startTime")) or now.timestamp()
        percent = utilization(self._declared(pod), now.timestamp() - started)
        labels = meta.get("labels") or {}
        job_id = labels.get(LABEL_JOB)
        attempt = labels.get(LABEL_ATTEMPT)
        for index in self.assigned.get(meta["uid"], []):
            if index >= len(gpus):
                continue
            gpu = gpus[index]
            self._load(gpu, percent)
            used = round((gpu.memory_total_mib or 0) * (0.1 + 0.6 * percent / 100.0), 1)
            gpu.processes = [
                ProcessReading(
                    pid=_pid(meta["uid"], index),
                    used_memory_mib=used,
                    pod_uid=meta["uid"],
                    job_id=int(job_id) if job_id and job_id.isdigit() else None,
                    attempt=int(attempt) if attempt and attempt.isdigit() else None,
                    foreign=not (job_id and job_id.isdigit()),
                )
            ]

    @staticmethod
    def _load(gpu: GpuReading, percent: float) -> None:
        total = gpu.memory_total_mib or 0.0
        gpu.utilization_gpu_pct = percent
        gpu.utilization_memory_pct = round(percent * 0.6, 1)
        gpu.memory_used_mib = round(total * (0.1 + 0.6 * percent / 100.0), 1)
        gpu.temperature_c = round(32.0 + 0.4 * percent, 1)
        gpu.power_draw_w = round(40.0 + 2.6 * percent, 1)
        gpu.throttle_reasons = [] if percent > 0 else ["gpu_idle"]
