"""Scheduler models, one module per aggregate: inventory (nodes, GPUs) and jobs."""

from scheduler.models.inventory import Gpu, Node, NodeEvent
from scheduler.models.jobs import Job, JobEvent, JobStatus
from scheduler.models.mounts import NamedMount

__all__ = ["Gpu", "Job", "JobEvent", "JobStatus", "NamedMount", "Node", "NodeEvent"]
