"""GPUs by Dynamic Resource Allocation (``resource.k8s.io/v1``): the exact devices booked.

With the device plugin, a pod asks for ``nvidia.com/gpu: N`` and the kubelet picks which N
GPUs of the node it gets, so "job 42 on GPU 1" may run on GPU 0. Where the cluster runs
NVIDIA's DRA driver (``gpu.nvidia.com``), each attempt instead gets a ResourceClaim whose
request selects exactly the UUIDs of the GPUs Karimasu placed it on, and the pod references
that claim. Pure translation here; the API calls are in ``kube.py``.

- Mode per node (``KARIMASU_GPU_ALLOCATION``): ``auto`` uses DRA on a node when discovery
  offers ``resource.k8s.io/v1``, the DeviceClass ``gpu.nvidia.com`` exists and the driver
  publishes a ResourceSlice for the node; ``dra`` uses it on every GPU node; ``device-plugin``
  never.
- The claim is named after the Job (``<job>-gpus``: a resubmission finds it, 409), owned by
  the Job (the garbage collector deletes it with the Job), and created right after the Job;
  the Job's annotation ``karimasu.io/gpu-devices`` keeps what it must select, so a reconcile
  pass recreates a claim a crash left uncreated (:func:`claim_from_job`).
- A GPU whose UUID is not known yet (its node agent has not reported) is selected by its
  ``index`` attribute in the node's pool instead; the claim says so in the annotation
  ``karimasu.io/selected-by: index``.
"""

from __future__ import annotations

from typing import Any

from scheduler.cluster.backend import GpuDevice, JobSpec

DRIVER = "gpu.nvidia.com"
DEVICE_CLASS = "gpu.nvidia.com"
GROUP_VERSION = "resource.k8s.io/v1"
REQUEST = "gpus"
DEVICES_ANNOTATION = "karimasu.io/gpu-devices"
SELECTED_BY_ANNOTATION = "karimasu.io/selected-by"
GPU_RESOURCE = "nvidia.com/gpu"
MODES = ("auto", "dra", "device-plugin")
DRA, DEVICE_PLUGIN = "dra", "device-plugin"


def claim_name(job_name: str) -> str:
    """The ResourceClaim of the attempt whose Job is ``job_name``."""
    return f"{job_name}-gpus"


def uses_dra(spec: JobSpec) -> bool:
    # A gang (several nodes) asks per count: one claim cannot span its pods (no templates yet).
    return spec.gpu_allocation == DRA and spec.gpus > 0 and spec.nodes == 1


def encode_devices(devices: list[GpuDevice]) -> str:
    """``"0=GPU-...,1="``: what the Job keeps for its claim (see :func:`decode_devices`).

    >>> encode_devices([GpuDevice(0, "GPU-a"), GpuDevice(1)])
    '0=GPU-a,1='
    """
    return ",".join(f"{d.index}={d.uuid}" for d in devices)


def decode_devices(text: str) -> list[GpuDevice]:
    """The inverse of :func:`encode_devices`; malformed entries are skipped.

    >>> decode_devices("0=GPU-a,1=")
    [GpuDevice(index=0, uuid='GPU-a'), GpuDevice(index=1, uuid='')]
    """
    devices = []
    for part in text.split(","):
        index, _, uuid = part.partition("=")
        if index.strip().isdigit():
            devices.append(GpuDevice(int(index), uuid.strip()))
    return devices


def _quoted(values: list[str]) -> str:
    return ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)


def selector(devices: list[GpuDevice]) -> tuple[str, str]:
    """(CEL expression, what it selects by: ``uuid`` or ``index``).

    >>> selector([GpuDevice(1, "GPU-b")])
    ('device.attributes["gpu.nvidia.com"].uuid in ["GPU-b"]', 'uuid')
    >>> selector([GpuDevice(1, "GPU-b"), GpuDevice(0)])
    ('device.attributes["gpu.nvidia.com"].index in [0, 1]', 'index')
    """
    if devices and all(d.uuid for d in devices):
        uuids = sorted(d.uuid for d in devices)
        return f'device.attributes["{DRIVER}"].uuid in [{_quoted(uuids)}]', "uuid"
    indices = ", ".join(str(i) for i in sorted(d.index for d in devices))
    return f'device.attributes["{DRIVER}"].index in [{indices}]', "index"


def claim_manifest(
    job_name: str,
    namespace: str,
    devices: list[GpuDevice],
    *,
    labels: dict[str, str],
    owner_uid: str,
) -> dict[str, Any]:
    """The ResourceClaim for exactly ``devices``, owned by the Job ``job_name``."""
    expression, selected_by = selector(devices)
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ResourceClaim",
        "metadata": {
            "name": claim_name(job_name),
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {
                SELECTED_BY_ANNOTATION: selected_by,
                DEVICES_ANNOTATION: encode_devices(devices),
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name,
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "devices": {
                "requests": [
                    {
                        "name": REQUEST,
                        "exactly": {
                            "deviceClassName": DEVICE_CLASS,
                            "allocationMode": "ExactCount",
                            "count": len(devices),
                            "selectors": [{"cel": {"expression": expression}}],
                        },
                    }
                ]
            }
        },
    }


def use_claim(job: dict[str, Any], devices: list[GpuDevice]) -> None:
    """Make the Job's pod take its GPUs from its claim instead of ``nvidia.com/gpu``."""
    name = job["metadata"]["name"]
    job["metadata"].setdefault("annotations", {})[DEVICES_ANNOTATION] = encode_devices(devices)
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec["resourceClaims"] = [{"name": REQUEST, "resourceClaimName": claim_name(name)}]
    for container in pod_spec["containers"]:
        resources = container.setdefault("resources", {})
        for section in ("requests", "limits"):
            (resources.get(section) or {}).pop(GPU_RESOURCE, None)
        resources["claims"] = [{"name": REQUEST}]


def claim_from_job(job: dict[str, Any]) -> dict[str, Any] | None:
    """The claim a DRA Job needs (None for a Job without one): what reconcile recreates."""
    meta = job["metadata"]
    claims = ((job.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "resourceClaims"
    ) or []
    text = (meta.get("annotations") or {}).get(DEVICES_ANNOTATION)
    if not claims or not text or not meta.get("uid"):
        return None
    devices = decode_devices(text)
    if not devices:
        return None
    return claim_manifest(
        meta["name"],
        meta.get("namespace", ""),
        devices,
        labels=dict(meta.get("labels") or {}),
        owner_uid=meta["uid"],
    )


def slice_devices(slices: list[dict[str, Any]]) -> dict[str, dict[int, str]]:
    """Node -> {GPU index: UUID} from the driver's ResourceSlices."""
    found: dict[str, dict[int, str]] = {}
    for item in slices:
        spec = item.get("spec") or {}
        if spec.get("driver") != DRIVER or not spec.get("nodeName"):
            continue
        devices = found.setdefault(str(spec["nodeName"]), {})
        for device in spec.get("devices") or []:
            attributes = device.get("attributes") or {}
            index = (attributes.get("index") or {}).get("int")
            uuid = (attributes.get("uuid") or {}).get("string")
            if isinstance(index, int):
                devices[index] = str(uuid or "")
    return found


def node_mode(
    setting: str, node: str, gpus: int, published: dict[str, dict[int, str]] | None
) -> str:
    """``dra`` or ``device-plugin`` for one node. ``published`` is :func:`slice_devices` of a
    cluster that offers DRA with the NVIDIA DeviceClass, None for one that does not."""
    if gpus <= 0 or setting == DEVICE_PLUGIN:
        return DEVICE_PLUGIN
    if setting == DRA:
        return DRA
    return DRA if published is not None and node in published else DEVICE_PLUGIN
