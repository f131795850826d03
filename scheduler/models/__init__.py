"""Scheduler models, one module per aggregate: inventory (nodes, GPUs), jobs (and sweeps),
quotas (priority classes, team quotas), reservations, named mounts and interactive sessions."""

from scheduler.models.inventory import Gpu, Node, NodeEvent
from scheduler.models.jobs import (
    Job,
    JobEvent,
    JobStatus,
    QueueLine,
    QueueOrder,
    QueuePlace,
    Sweep,
    attach_queue_places,
    waiting_message,
)
from scheduler.models.mounts import NamedMount, NamedSecret
from scheduler.models.quotas import PriorityClass, TeamQuota
from scheduler.models.reservations import (
    LIVE_STATUSES,
    MaintenanceWindow,
    Reservation,
    ReservationSlot,
    ReservationStatus,
    TeamPolicy,
)
from scheduler.models.sessions import Session, WorkspaceImage

__all__ = [
    "LIVE_STATUSES",
    "Gpu",
    "Job",
    "JobEvent",
    "JobStatus",
    "MaintenanceWindow",
    "NamedMount",
    "NamedSecret",
    "Node",
    "NodeEvent",
    "PriorityClass",
    "QueueLine",
    "QueueOrder",
    "QueuePlace",
    "Reservation",
    "ReservationSlot",
    "ReservationStatus",
    "Session",
    "Sweep",
    "TeamPolicy",
    "TeamQuota",
    "WorkspaceImage",
    "attach_queue_places",
    "waiting_message",
]
