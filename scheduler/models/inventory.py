"""The GPU nodes as the cluster reports them, kept in sync by `sync_inventory`.

A node that leaves the cluster keeps its row (`gone_at` set) so history, bookings and jobs
that referenced it still resolve; `NodeEvent` records when it appeared, left, went
NotReady or was cordoned.
"""

from __future__ import annotations

from django.db import models


class Node(models.Model):
    name = models.CharField(max_length=253, unique=True)
    gpu_model = models.CharField(max_length=100, blank=True)
    gpu_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    gpu_capacity = models.PositiveSmallIntegerField(default=0)
    gpu_allocatable = models.PositiveSmallIntegerField(default=0)
    cpu_allocatable_millis = models.PositiveIntegerField(default=0)
    memory_allocatable_mb = models.PositiveIntegerField(default=0)
    ready = models.BooleanField(default=False)
    cordoned = models.BooleanField(default=False)
    taints = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    # Extended resources the node advertises besides GPUs (e.g. "rdma/ib": 8): a gang's
    # pods request RDMA ones (``KARIMASU_RDMA_RESOURCES``) when all its nodes have them.
    extended_resources = models.JSONField(default=dict, blank=True)
    # What pods Karimasu did not create hold here (DaemonSets, static pods, other
    # namespaces' workloads); the scheduler subtracts it from the allocatable.
    foreign_gpus = models.PositiveSmallIntegerField(default=0)
    foreign_cpu_millis = models.PositiveIntegerField(default=0)
    foreign_memory_mb = models.PositiveIntegerField(default=0)
    foreign_pods = models.JSONField(default=list, blank=True)  # "namespace/name", sorted
    # The part of it DaemonSet and static pods hold (there for good): what a job can never
    # have of the node, so submission checks against allocatable minus this.
    daemon_cpu_millis = models.PositiveIntegerField(default=0)
    daemon_memory_mb = models.PositiveIntegerField(default=0)
    # How the cluster gives this node's GPUs to a pod (docs/cluster.md, "GPU allocation"):
    # "dra" = exactly the devices Karimasu booked (a ResourceClaim naming their UUIDs);
    # "device-plugin" = a count (nvidia.com/gpu): the cluster picks which GPUs.
    gpu_allocation = models.CharField(
        max_length=16,
        choices=[("dra", "dra"), ("device-plugin", "device-plugin")],
        default="device-plugin",
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def schedulable(self) -> bool:
        return self.ready and not self.cordoned and self.gone_at is None


class Gpu(models.Model):
    """One physical GPU. `uuid` arrives with the node agent's first reading."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="gpus")
    index = models.PositiveSmallIntegerField()
    uuid = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=100, blank=True)
    memory_mb = models.PositiveIntegerField(null=True, blank=True)
    healthy = models.BooleanField(default=True)
    present = models.BooleanField(default=True)

    class Meta:
        ordering = ["node__name", "index"]
        constraints = [
            models.UniqueConstraint(fields=["node", "index"], name="gpu_unique_node_index"),
        ]

    def __str__(self) -> str:
        return f"{self.node.name}/gpu{self.index}"


class NodeEvent(models.Model):
    class Kind(models.TextChoices):
        APPEARED = "appeared"
        GONE = "gone"
        RETURNED = "returned"
        READY = "ready"
        NOT_READY = "not_ready"
        CORDONED = "cordoned"
        UNCORDONED = "uncordoned"
        CAPACITY_CHANGED = "capacity_changed"

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    at = models.DateTimeField()
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["node", "-at"])]

    def __str__(self) -> str:
        return f"{self.node_id} {self.kind} at {self.at:%Y-%m-%d %H:%M}"
