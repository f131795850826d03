"""ClusterBackend on the official `kubernetes` client: each attempt is a `batch/v1` Job.

The module that builds Kubernetes API clients (``api_client``: the node agent's pod lookups
use it too) and runs the scheduler's Jobs. Jobs live in one namespace
(default `karimasu-jobs`) and carry labels for the job, attempt, user and team, so the
reconciler can list exactly what Karimasu owns. Names are deterministic per attempt
(`karimasu-job-<id>-a<attempt>`): a retried submit finds the Job it already created (409),
which is how "a job runs at most once per attempt" holds across crashes.

Reads use `_preload_content=False` and plain dicts: the mapping functions in
`scheduler.cluster.mapping` are pure and tested on their own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from scheduler.cluster import dra, mapping
from scheduler.cluster.backend import (
    AttemptState,
    ClusterRejected,
    ClusterUnavailable,
    ForeignUsage,
    JobSpec,
    NodeInfo,
    ResyncRequired,
    SubmitResult,
)

log = logging.getLogger("karimasu.cluster")

T = TypeVar("T")

DEFAULT_NAMESPACE = "karimasu-jobs"
# (connect, read) seconds for ordinary calls; log follows and watches pass their own.
REQUEST_TIMEOUT = (3.0, 15.0)


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the API, turning transport failures and 5xx into ClusterUnavailable.

    4xx ApiExceptions pass through for the caller to interpret (404 and 409 are answers).
    """
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if not exc.status or exc.status >= 500:
            raise ClusterUnavailable(f"API server error {exc.status}: {exc.reason}") from exc
        raise
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterUnavailable(f"API server unreachable: {exc}") from exc


def _json(response: Any) -> Any:
    return json.loads(response.data)


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An API client from the kubeconfig at ``kubeconfig``, else the pod's in-cluster
    service account (how the node agent's pod lookups reach the API server)."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    config.load_incluster_config()
    return client.ApiClient()


@dataclass(frozen=True)
class ApiConnection:
    """How to reach the API server outside the official client (the session proxy's
    ``httpx`` and ``websockets`` calls): its URL, headers (a bearer token) and TLS files."""

    host: str
    headers: dict[str, str]
    verify: bool
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def api_connection(kubeconfig: str | None = None) -> ApiConnection:
    """The server, credentials and TLS settings of ``api_client(kubeconfig)``."""
    api = api_client(kubeconfig)
    try:
        conf = api.configuration
        headers: dict[str, str] = {}
        token = conf.get_api_key_with_prefix("authorization") or conf.get_api_key_with_prefix(
            "BearerToken"
        )
        if token:
            headers["Authorization"] = token
        return ApiConnection(
            host=str(conf.host).rstrip("/"),
            headers=headers,
            verify=bool(conf.verify_ssl),
            ca_file=conf.ssl_ca_cert or None,
            cert_file=conf.cert_file or None,
            key_file=conf.key_file or None,
        )
    finally:
        api.close()


class KubernetesBackend:
    """The real ClusterBackend. Construct with `from_kubeconfig` or `in_cluster`."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        run_as_user: int = 1000,
        gpu_allocation: str = "auto",
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.run_as_user = run_as_user
        self.gpu_allocation = gpu_allocation
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.resource = client.ResourceV1Api(api_client)

    @classmethod
    def from_kubeconfig(
        cls, path: str, *, namespace: str = DEFAULT_NAMESPACE, context: str | None = None
    ) -> KubernetesBackend:
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
        configuration.retries = 1
        return cls(client.ApiClient(configuration), namespace=namespace)

    @classmethod
    def in_cluster(cls, *, namespace: str = DEFAULT_NAMESPACE) -> KubernetesBackend:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        configuration.retries = 1
        return cls(client.ApiClient(configuration), namespace=namespace)

    # --- inventory ----------------------------------------------------------------------

    def inventory(self) -> list[NodeInfo]:
        """Every Node, with what pods Karimasu did not create hold on it (all namespaces:
        the ClusterRole's ``pods`` list). Without that permission (a 403) the nodes come
        back without foreign usage, and a warning says why."""
        nodes = _json(_call(self.core.list_node, _preload_content=False))["items"]
        foreign = self._foreign_usage()
        published = self._dra_published()
        infos = []
        for node in nodes:
            info = mapping.node_info(node, foreign.get(node["metadata"]["name"]))
            uuids = (published or {}).get(info.name, {})
            gpus = max(info.gpu_capacity, len(uuids))
            mode = dra.node_mode(self.gpu_allocation, info.name, gpus, published)
            info = dataclasses.replace(info, gpu_allocation=mode, gpu_uuids=uuids)
            if mode == dra.DRA and not info.gpu_capacity and uuids:
                # A DRA-only node (no device plugin): its GPUs are the driver's devices.
                info = dataclasses.replace(info, gpu_capacity=gpus, gpu_allocatable=gpus)
            infos.append(info)
        return infos

    def _dra_published(self) -> dict[str, dict[int, str]] | None:
        """The GPUs NVIDIA's DRA driver publishes per node, or None where the cluster does not
        offer DRA for them (no ``resource.k8s.io/v1``, no DeviceClass ``gpu.nvidia.com``,
        or not readable: the ClusterRole needs deviceclasses get and resourceslices list)."""
        if self.gpu_allocation == dra.DEVICE_PLUGIN:
            return None
        try:
            _call(self.resource.read_device_class, dra.DEVICE_CLASS, _preload_content=False)
            slices = _json(
                _call(
                    self.resource.list_resource_slice,
                    field_selector=f"spec.driver={dra.DRIVER}",
                    _preload_content=False,
                )
            )["items"]
        except ApiException as exc:
            if exc.status != 404:  # 404: no resource.k8s.io/v1 or no NVIDIA DeviceClass
                log.warning(
                    "cluster.dra_unreadable %s %s: GPUs are allocated per count",
                    exc.status,
                    _message(exc),
                )
            return None
        return dra.slice_devices(slices)

    def _foreign_usage(self) -> dict[str, ForeignUsage]:
        try:
            response = _call(
                self.core.list_pod_for_all_namespaces,
                field_selector="status.phase!=Succeeded,status.phase!=Failed",
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status in (401, 403):
                log.warning(
                    "cluster.foreign_pods_unreadable %s: capacity held by other pods is not "
                    "subtracted (the ClusterRole needs pods list)",
                    exc.status,
                )
                return {}
            raise ClusterRejected(f"listing pods: {exc.status} {_message(exc)}") from exc
        return mapping.foreign_usage(_json(response)["items"], self.namespace)

    # --- jobs ---------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> SubmitResult:
        """Create the attempt's Job (a second call finds it: 409, not an error); a gang's
        headless Service after it, owned by it, also when the Job was already there (a
        crash between the two is repaired by submitting again)."""
        body = mapping.job_manifest(spec, namespace=self.namespace, run_as_user=self.run_as_user)
        name = body["metadata"]["name"]
        if dra.uses_dra(spec):
            dra.use_claim(body, spec.gpu_devices)
        try:
            created = _json(
                _call(
                    self.batch.create_namespaced_job, self.namespace, body, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status == 409:
                log.info(
                    "cluster.submit_exists job=%s attempt=%s name=%s",
                    spec.job_id,
                    spec.attempt,
                    name,
                )
                existing = self._read_job(name) if dra.uses_dra(spec) or spec.nodes > 1 else {}
                if dra.uses_dra(spec):
                    self._ensure_claim(existing)
                if spec.nodes > 1:
                    self._ensure_service(spec, str(existing["metadata"].get("uid", "")))
                return SubmitResult(name=name, created=False)
            raise ClusterRejected(f"Job {name} rejected: {exc.status} {_message(exc)}") from exc
        if dra.uses_dra(spec):
            # After the Job, owned by it: a crash in between leaves a Job whose pod waits for
            # its claim, which the next reconcile creates (repair_claims); never a claim
            # without a Job.
            self._ensure_claim(created)
        if spec.nodes > 1:
            self._ensure_service(spec, str(created["metadata"].get("uid", "")))
        log.info(
            "cluster.submitted job=%s attempt=%s name=%s node=%s",
            spec.job_id,
            spec.attempt,
            name,
            spec.node_name,
        )
        return SubmitResult(name=name, created=True)

    def _read_job(self, name: str) -> dict[str, Any]:
        try:
            job: dict[str, Any] = _json(
                _call(self.batch.read_namespaced_job, name, self.namespace, _preload_content=False)
            )
        except ApiException as exc:
            raise ClusterRejected(f"reading {name}: {exc.status} {_message(exc)}") from exc
        return job

    def _ensure_claim(self, job: dict[str, Any]) -> bool:
        """Create the ResourceClaim the DRA Job needs; False when it existed already."""
        body = dra.claim_from_job(job)
        if body is None:
            return False
        name = body["metadata"]["name"]
        try:
            _call(
                self.resource.create_namespaced_resource_claim,
                self.namespace,
                body,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise ClusterRejected(
                f"ResourceClaim {name} rejected: {exc.status} {_message(exc)}"
            ) from exc
        log.info(
            "cluster.claim_created name=%s selected_by=%s devices=%s",
            name,
            body["metadata"]["annotations"][dra.SELECTED_BY_ANNOTATION],
            body["metadata"]["annotations"][dra.DEVICES_ANNOTATION],
        )
        return True

    def repair_claims(self) -> list[str]:
        """Create the claims of Karimasu's DRA Jobs that lack one (a crash between creating
        the Job and its claim); returns their names. Claims of deleted Jobs need nothing:
        they are owned by their Job and garbage-collected with it."""
        jobs = _json(
            _call(
                self.batch.list_namespaced_job,
                self.namespace,
                label_selector=mapping.OWNED_SELECTOR,
                _preload_content=False,
            )
        )["items"]
        wanting = [j for j in jobs if dra.claim_from_job(j) is not None]
        if not wanting:
            return []
        existing = {
            c["metadata"]["name"]
            for c in _json(
                _call(
                    self.resource.list_namespaced_resource_claim,
                    self.namespace,
                    _preload_content=False,
                )
            )["items"]
        }
        created = []
        for job in wanting:
            name = dra.claim_name(job["metadata"]["name"])
            if name in existing or job["metadata"].get("deletionTimestamp"):
                continue
            try:
                if self._ensure_claim(job):
                    created.append(name)
            except ClusterRejected as exc:  # one refused claim never stops the others
                log.warning("cluster.claim_refused name=%s %s", name, exc)
        return created

    def _ensure_service(self, spec: JobSpec, owner_uid: str) -> None:
        """The gang's headless Service (``mapping.gang_service``); 409: already there."""
        body = mapping.gang_service(spec, namespace=self.namespace, owner_uid=owner_uid)
        try:
            _call(self.core.create_namespaced_service, self.namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                name = body["metadata"]["name"]
                raise ClusterRejected(
                    f"Service {name} rejected: {exc.status} {_message(exc)}"
                ) from exc

    def _delete_service(self, name: str) -> None:
        """A gang's Service goes with its Job (owner reference on a real cluster; here too,
        in case the garbage collector is slow or the Service was made before its owner)."""
        try:
            _call(self.core.delete_namespaced_service, name, self.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 403:  # RBAC without services: the owner reference still GCs it
                log.warning("cluster.service_delete_forbidden name=%s", name)
            elif exc.status not in (404, 405):
                raise ClusterRejected(f"deleting Service {name}: {exc.status}") from exc

    def status(self, job_id: int, attempt: int) -> AttemptState | None:
        name = mapping.job_name(job_id, attempt)
        try:
            job = _json(
                _call(self.batch.read_namespaced_job, name, self.namespace, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ClusterRejected(f"reading {name}: {exc.status} {_message(exc)}") from exc
        pods = self._pods(f"job-name={name}")
        return mapping.attempt_state(job, pods)

    def list_owned(self) -> list[AttemptState]:
        selector = mapping.OWNED_SELECTOR
        jobs = _json(
            _call(
                self.batch.list_namespaced_job,
                self.namespace,
                label_selector=selector,
                _preload_content=False,
            )
        )["items"]
        pods_by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in self._pods(selector):
            owner = pod["metadata"].get("labels", {}).get("job-name", "")
            pods_by_job.setdefault(owner, []).append(pod)
        states = []
        for job in jobs:
            state = mapping.attempt_state(job, pods_by_job.get(job["metadata"]["name"], []))
            if state is not None:
                states.append(state)
        return states

    def logs(
        self,
        job_id: int,
        attempt: int,
        *,
        tail_lines: int | None = None,
        follow: bool = False,
        read_timeout_s: float | None = None,
    ) -> Iterator[str]:
        """Lines of the attempt's newest pod; with `follow`, until the container ends or no
        line came for `read_timeout_s` (None: wait as long as it takes)."""
        pods = self._pods(f"job-name={mapping.job_name(job_id, attempt)}")
        if not pods:
            return iter(())
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))
        kwargs: dict[str, Any] = {"follow": follow, "_preload_content": False}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        if follow:
            kwargs["_request_timeout"] = (REQUEST_TIMEOUT[0], read_timeout_s)
        try:
            response = _call(
                self.core.read_namespaced_pod_log, pod["metadata"]["name"], self.namespace, **kwargs
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # container not started yet, or pod gone
                return iter(())
            raise ClusterRejected(f"logs: {exc.status} {_message(exc)}") from exc
        return _lines(response)

    def cancel(self, job_id: int, attempt: int, *, grace_s: int | None = None) -> bool:
        """Delete the attempt's Job and its pods. False when it was already gone.

        With ``grace_s`` (a preemption), the pods are told first and stopped with that grace
        themselves: each gets the ``karimasu.io/stop-requested-at`` annotation (the container
        reads it at ``/etc/karimasu/pod/annotations``) and is deleted with
        ``grace_s`` — a Job's deletion grace does not reach its pods (the garbage collector
        deletes them with their own default)."""
        name = mapping.job_name(job_id, attempt)
        if grace_s is not None:
            self._stop_pods(name, grace_s)
        try:
            _call(
                self.batch.delete_namespaced_job,
                name,
                self.namespace,
                propagation_policy="Background",
                grace_period_seconds=grace_s,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 404:
                self._delete_service(name)
                return False
            raise ClusterRejected(f"deleting {name}: {exc.status} {_message(exc)}") from exc
        self._delete_service(name)
        log.info("cluster.cancelled job=%s attempt=%s name=%s", job_id, attempt, name)
        return True

    def set_deadline(self, job_id: int, attempt: int, active_deadline_s: int) -> bool:
        """Move the attempt's ``activeDeadlineSeconds`` (an extended session). False when
        the Job is gone."""
        name = mapping.job_name(job_id, attempt)
        try:
            _call(
                self.batch.patch_namespaced_job,
                name,
                self.namespace,
                {"spec": {"activeDeadlineSeconds": int(active_deadline_s)}},
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise ClusterRejected(f"patching {name}: {exc.status} {_message(exc)}") from exc
        return True

    def watch(
        self, kind: str, resource_version: str | None, *, timeout_s: int = 30
    ) -> Iterator[str]:
        """Follow changes to Karimasu's Jobs (`kind="jobs"`) or Pods (`"pods"`).

        Yields the resourceVersion after each change. Starts from `resource_version`, or
        from now (a fresh list) when None. The stream ends after `timeout_s`; call again with
        the last version. ResyncRequired (410 Gone) means the version is too old: relist.
        """
        if kind == "jobs":
            list_fn: Callable[..., Any] = self.batch.list_namespaced_job
        elif kind == "pods":
            list_fn = self.core.list_namespaced_pod
        else:
            raise ValueError(f"unknown kind {kind!r}")
        if resource_version is None:
            listed = _json(
                _call(
                    list_fn,
                    self.namespace,
                    label_selector=mapping.OWNED_SELECTOR,
                    limit=1,
                    _preload_content=False,
                )
            )
            resource_version = str(listed["metadata"]["resourceVersion"])
            yield resource_version
        stream = watch.Watch().stream(
            list_fn,
            self.namespace,
            label_selector=mapping.OWNED_SELECTOR,
            resource_version=resource_version,
            timeout_seconds=timeout_s,
            _request_timeout=(REQUEST_TIMEOUT[0], timeout_s + 5),
        )
        try:
            for event in stream:
                if event["type"] == "ERROR":
                    raise ResyncRequired(str(event.get("raw_object", "")))
                yield str(event["object"].metadata.resource_version)
        except ApiException as exc:
            if exc.status == 410:
                raise ResyncRequired(f"resourceVersion {resource_version} expired") from exc
            if not exc.status or exc.status >= 500:
                raise ClusterUnavailable(f"watch failed: {exc.status} {exc.reason}") from exc
            raise ClusterRejected(f"watch {kind}: {exc.status} {_message(exc)}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnavailable(f"watch interrupted: {exc}") from exc

    def ensure_namespace(self) -> None:
        """Create the jobs namespace if missing (demo and emulator; production has it)."""
        try:
            _call(self.core.read_namespace, self.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            try:
                _call(self.core.create_namespace, body, _preload_content=False)
            except ApiException as create_exc:
                if create_exc.status != 409:
                    raise

    def _stop_pods(self, job: str, grace_s: int) -> None:
        stamp = datetime.now(tz=UTC).isoformat(timespec="seconds")
        for pod in self._pods(f"job-name={job}"):
            pod_name = pod["metadata"]["name"]
            try:
                _call(
                    self.core.patch_namespaced_pod,
                    pod_name,
                    self.namespace,
                    {"metadata": {"annotations": {mapping.STOP_ANNOTATION: stamp}}},
                )
                _call(
                    self.core.delete_namespaced_pod,
                    pod_name,
                    self.namespace,
                    grace_period_seconds=grace_s,
                    _preload_content=False,
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise ClusterRejected(
                        f"stopping pod {pod_name}: {exc.status} {_message(exc)}"
                    ) from exc

    def _pods(self, selector: str) -> list[dict[str, Any]]:
        response = _call(
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=selector,
            _preload_content=False,
        )
        items: list[dict[str, Any]] = _json(response)["items"]
        return items


def _lines(response: Any) -> Iterator[str]:
    try:
        buffer = b""
        for chunk in response.stream(4096):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                yield line.decode("utf-8", "replace")
        if buffer:
            yield buffer.decode("utf-8", "replace")
    finally:
        response.release_conn()


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body).get("message", exc.reason))
    except (TypeError, ValueError):
        return str(exc.reason)
