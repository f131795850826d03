"""Build the configured ClusterBackend from settings."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from scheduler.cluster.backend import ClusterBackend, ClusterUnavailable
from scheduler.cluster.kube import KubernetesBackend


def cluster_backend() -> ClusterBackend:
    """KUBECONFIG if set, else the in-cluster service account, else ClusterUnavailable."""
    namespace = settings.KARIMASU_JOBS_NAMESPACE
    if settings.KUBECONFIG:
        if not Path(settings.KUBECONFIG).is_file():
            # The demo's emulator writes it on start; until then the cluster is just not there.
            raise ClusterUnavailable(
                _("The kubeconfig %(path)s does not exist (yet).") % {"path": settings.KUBECONFIG}
            )
        backend = KubernetesBackend.from_kubeconfig(settings.KUBECONFIG, namespace=namespace)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        backend = KubernetesBackend.in_cluster(namespace=namespace)
    else:
        raise ClusterUnavailable(
            _(
                "No cluster configured: set KUBECONFIG, or run inside Kubernetes "
                "(`make run` starts an emulator and sets KUBECONFIG for you)."
            )
        )
    backend.run_as_user = settings.KARIMASU_JOB_RUN_AS_USER
    backend.gpu_allocation = settings.KARIMASU_GPU_ALLOCATION
    return backend
