"""Submit-time checks: what makes a job unrunnable as submitted, in words for the API.

The services layer calls ``validate_job`` before creating the row; an empty result means
some node could run the job some day (the cycle then decides when).
"""

from __future__ import annotations

from collections.abc import Iterable

from scheduler.core.snapshot import Node, QueuedJob

MAX_GPUS = 8


def validate_job(nodes: Iterable[Node], job: QueuedJob, user_cap: int | None = None) -> list[str]:
    """Errors for ``job`` against the inventory ``nodes`` and the user's GPU cap.

    >>> from scheduler.core.snapshot import Gpu
    >>> node = Node("n1", "A100", tuple(Gpu(i) for i in range(8)))
    >>> validate_job([node], QueuedJob("j", "ml", "alice", 2, 3600, 0, frozenset({"H100"})))
    ['unknown GPU model: H100 (the cluster has A100)']
    """
    nodes = list(nodes)
    errors: list[str] = []
    if not 0 <= job.gpus <= MAX_GPUS:
        errors.append(f"gpus must be between 0 and {MAX_GPUS} (one node), not {job.gpus}")
    if job.max_runtime_s <= 0:
        errors.append("max runtime must be positive")
    if job.sweep_parallelism is not None and job.sweep_parallelism < 1:
        errors.append("sweep parallelism must be at least 1")
    known = {n.gpu_model for n in nodes}
    unknown = sorted(job.models - known)
    if unknown:
        errors.append(
            f"unknown GPU model: {', '.join(unknown)} (the cluster has {', '.join(sorted(known))})"
        )
    fitting = [
        n
        for n in nodes
        if (job.gpus == 0 or not job.models or n.gpu_model in job.models)
        and len(n.gpus) >= job.gpus
        and n.cpu_milli >= job.cpu_milli
        and n.memory_mib >= job.memory_mib
    ]
    if not fitting and not unknown:
        errors.append(
            f"no node has {job.gpus} GPUs"
            + (f" of model {' or '.join(sorted(job.models))}" if job.models else "")
            + f" with {job.cpu_milli}m CPU and {job.memory_mib} MiB"
        )
    if user_cap is not None and job.gpus > user_cap:
        errors.append(f"{job.gpus} GPUs is over your limit of {user_cap} concurrent GPUs")
    return errors
