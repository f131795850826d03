"""Clients nobody here wrote, through the basic flow: create a Job, list, watch its Pod,
read the Pod's log, delete the Job. kr8s, lightkube and kubernetes-asyncio (dev extras)."""

from __future__ import annotations

import asyncio
import itertools

from .conftest import Cluster, job_manifest


def _log_ready(phase: str | None) -> bool:
    return phase in ("Running", "Succeeded", "Failed")


def test_kr8s_basic_flow(cluster: Cluster) -> None:
    import kr8s
    from kr8s.objects import Job, Pod

    api = kr8s.api(kubeconfig=str(cluster.kubeconfig), namespace=cluster.namespace)
    job = Job(job_manifest("kr8s-job"), api=api)
    job.create()
    names = [j.name for j in api.get("jobs", namespace=cluster.namespace)]
    assert names == ["kr8s-job"]
    selector = {"job-name": "kr8s-job"}
    seen = None
    for event, obj in api.watch("pods", namespace=cluster.namespace, label_selector=selector):
        assert event in ("ADDED", "MODIFIED")
        if _log_ready(obj.raw.get("status", {}).get("phase")):
            seen = obj.name
            break
    assert seen is not None
    pod = Pod.get(seen, namespace=cluster.namespace, api=api)
    assert "".join(pod.logs()).strip() != ""
    job.delete(propagation_policy="Background")
    cluster.wait_for("the job to go", lambda: not job.exists())


def test_lightkube_basic_flow(cluster: Cluster) -> None:
    from lightkube import Client, KubeConfig
    from lightkube.codecs import from_dict
    from lightkube.resources.batch_v1 import Job
    from lightkube.resources.core_v1 import Pod
    from lightkube.types import CascadeType

    kube = Client(config=KubeConfig.from_file(str(cluster.kubeconfig)), namespace=cluster.namespace)
    created = kube.create(from_dict(job_manifest("lightkube-job")))
    assert created.metadata.uid
    assert [j.metadata.name for j in kube.list(Job)] == ["lightkube-job"]
    seen = None
    for event, pod in kube.watch(Pod, labels={"job-name": "lightkube-job"}):
        assert event in ("ADDED", "MODIFIED")
        if _log_ready(pod.status.phase if pod.status else None):
            seen = pod.metadata.name
            break
    assert seen is not None
    lines = list(itertools.islice(kube.log(seen), 50))
    assert "".join(lines).strip() != ""
    kube.delete(Job, "lightkube-job", cascade=CascadeType.BACKGROUND)
    cluster.wait_for("the job to go", lambda: [j.metadata.name for j in kube.list(Job)] == [])


def test_kubernetes_asyncio_basic_flow(cluster: Cluster) -> None:
    from kubernetes_asyncio import client, config, watch

    async def flow() -> str:
        api_client = await config.new_client_from_config(config_file=str(cluster.kubeconfig))
        async with api_client:
            batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
            await batch.create_namespaced_job(cluster.namespace, job_manifest("async-job"))
            jobs = await batch.list_namespaced_job(cluster.namespace)
            assert [j.metadata.name for j in jobs.items] == ["async-job"]
            seen = None
            stream = watch.Watch().stream(
                core.list_namespaced_pod,
                cluster.namespace,
                label_selector="job-name=async-job",
                timeout_seconds=90,
            )
            async for event in stream:
                if _log_ready(event["object"].status.phase):
                    seen = event["object"].metadata.name
                    break
            assert seen is not None
            log = await core.read_namespaced_pod_log(seen, cluster.namespace)
            await batch.delete_namespaced_job(
                "async-job", cluster.namespace, propagation_policy="Background"
            )
            for _ in range(900):
                if not (await batch.list_namespaced_job(cluster.namespace)).items:
                    break
                await asyncio.sleep(0.1)
            assert (await batch.list_namespaced_job(cluster.namespace)).items == []
            return log

    assert asyncio.run(flow()).strip() != ""
