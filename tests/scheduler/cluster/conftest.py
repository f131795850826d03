"""The Kubernetes API emulator over HTTP and the real backend pointed at it."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from kube_emulator import start_emulator
from kube_emulator.clock import FakeClock
from portal.accounts.models import Membership, Team, User
from scheduler.cluster.kube import KubernetesBackend
from scheduler.models import Job, Node
from scheduler.services.inventory import sync_inventory

ONE_NODE = """
namespaces: [karimasu-jobs]
defaults: {gpus: 2, gpu_product: Tesla-V100-SXM2-16GB, gpu_memory_mib: 16384,
           cpu: "32", memory: 256Gi}
nodes:
  - name: tesla-01
"""


@pytest.fixture
def emulator(tmp_path: Path, request):
    """A fresh emulated cluster on a free port with a fake clock. Default: 4 x 2 V100;
    `@pytest.mark.nodes_file(YAML)` replaces the nodes."""
    marker = request.node.get_closest_marker("nodes_file")
    nodes_file = None
    if marker:
        nodes_file = tmp_path / "nodes.yaml"
        nodes_file.write_text(marker.args[0])
    handle = start_emulator(
        port=0,
        nodes_file=str(nodes_file) if nodes_file else None,
        # Starts at the real time: reconcile compares the cluster's timestamps with its `now`.
        clock=FakeClock(start=float(int(time.time()))),
        kubeconfig_path=str(tmp_path / "kubeconfig"),
    )
    yield handle
    handle.close()


@pytest.fixture
def backend(emulator, request) -> KubernetesBackend:
    """The backend; `@pytest.mark.gpu_allocation("device-plugin")` sets its GPU mode (the
    default emulated cluster offers DRA, so "auto" uses it)."""
    backend = KubernetesBackend.from_kubeconfig(str(emulator.kubeconfig_path))
    marker = request.node.get_closest_marker("gpu_allocation")
    if marker:
        backend.gpu_allocation = marker.args[0]
    return backend


@pytest.fixture
def synced(db, backend):
    """The emulated nodes are in the database."""
    sync_inventory(backend, now=timezone.now())


@pytest.fixture
def team(db):
    user = User.objects.create_user("alice")
    team = Team.objects.create(slug="vision", name="Vision")
    Membership.objects.create(team=team, user=user, role="lead")
    return team


@pytest.fixture
def make_admitted(team, synced):
    """An admitted job row on a node (what a scheduling cycle leaves behind)."""

    def make(node="tesla-01", gpus=1, indices=(0,), duration=30, **annotations) -> Job:
        now = timezone.now()
        notes = {"karimasu.io/sim-duration-seconds": str(duration), **annotations}
        return Job.objects.create(
            name="train",
            owner=team.members.first(),
            team=team,
            image="pytorch/pytorch:2.4",
            command=["python", "train.py"],
            gpus=gpus,
            max_runtime_s=3600,
            status="admitted",
            node=Node.objects.get(name=node),
            gpu_indices=list(indices),
            submitted_at=now - timedelta(seconds=5),
            admitted_at=now,
            annotations=notes,
        )

    return make
