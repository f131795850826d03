"""The Kubernetes API's pod proxy (``/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/...``):
where a session's workspace is reached, with the cluster's own credentials.

Plain data in, URLs and parsed answers out; the session proxy (``scheduler.session_proxy``)
does the HTTP and WebSocket forwarding with ``httpx`` and ``websockets``. The API
server's address, token and TLS files come from the same kubeconfig (or in-cluster service
account) as the backend's (``scheduler.cluster.kube.api_connection``).
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from scheduler.cluster.backend import ClusterUnavailable
from scheduler.cluster.kube import ApiConnection, api_connection
from scheduler.cluster.mapping import LABEL_ATTEMPT, LABEL_JOB

_connection: tuple[str, ApiConnection] | None = None


def connection() -> ApiConnection:
    """The configured API server (cached per kubeconfig path)."""
    global _connection
    key = settings.KUBECONFIG or "in-cluster"
    if _connection is None or _connection[0] != key:
        try:
            _connection = (key, api_connection(settings.KUBECONFIG or None))
        except Exception as exc:  # a missing or broken kubeconfig: no cluster (yet)
            raise ClusterUnavailable(f"no cluster connection: {exc}") from exc
    return _connection[1]


def tls(conn: ApiConnection) -> ssl.SSLContext | None:
    """The TLS context for ``conn`` (None for plain http)."""
    if not conn.host.startswith("https:"):
        return None
    context = ssl.create_default_context(cafile=conn.ca_file)
    if not conn.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if conn.cert_file:
        context.load_cert_chain(conn.cert_file, conn.key_file)
    return context


def pods_url(conn: ApiConnection, namespace: str, job_id: int, attempt: int) -> str:
    selector = quote(f"{LABEL_JOB}={job_id},{LABEL_ATTEMPT}={attempt}", safe="")
    return f"{conn.host}/api/v1/namespaces/{quote(namespace)}/pods?labelSelector={selector}"


def proxy_url(conn: ApiConnection, namespace: str, pod: str, port: int, path: str) -> str:
    """``path`` (no leading slash, already URL-encoded, may carry ``?query``) on ``port`` of
    ``pod``, through the API server."""
    return (
        f"{conn.host}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}:{int(port)}"
        f"/proxy/{path}"
    )


def websocket_url(http_url: str) -> str:
    """
    >>> websocket_url("https://k8s:6443/x"), websocket_url("http://127.0.0.1:1/y")
    ('wss://k8s:6443/x', 'ws://127.0.0.1:1/y')
    """
    if http_url.startswith("https:"):
        return "wss:" + http_url[len("https:") :]
    return "ws:" + http_url[len("http:") :]


def running_pod(pod_list: Any) -> str | None:
    """The name of the running, undeleted pod in a PodList, if any.

    >>> running_pod({"items": [{"metadata": {"name": "a"}, "status": {"phase": "Pending"}},
    ...                        {"metadata": {"name": "b"}, "status": {"phase": "Running"}}]})
    'b'
    >>> running_pod({"items": []}), running_pod("junk")
    (None, None)
    """
    if not isinstance(pod_list, dict) or not isinstance(pod_list.get("items"), list):
        return None
    for pod in pod_list["items"]:
        if not isinstance(pod, dict):
            continue
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if (
            isinstance(meta, dict)
            and isinstance(status, dict)
            and status.get("phase") == "Running"
            and not meta.get("deletionTimestamp")
            and isinstance(meta.get("name"), str)
        ):
            return str(meta["name"])
    return None


def parse_activity(payload: Any) -> datetime | None:
    """``last_activity`` of a workspace's ``/api/status`` (Jupyter's shape: an ISO 8601
    time; epoch seconds accepted), else None.

    >>> parse_activity({"last_activity": "2026-01-02T03:04:05Z"}).isoformat()
    '2026-01-02T03:04:05+00:00'
    >>> parse_activity({"last_activity": 0}).year, parse_activity({}), parse_activity([1])
    (1970, None, None)
    """
    if not isinstance(payload, dict):
        return None
    value = payload.get("last_activity")
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value), tz=UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def workspace_last_activity(
    job_id: int, attempt: int, port: int, base_path: str, *, timeout: float = 5.0
) -> datetime | None:
    """Ask the workspace of a job's attempt for its ``/api/status`` last activity. None
    when it cannot say (not running, unreachable, no such field)."""
    try:
        conn = connection()
    except ClusterUnavailable:
        return None
    namespace = settings.KARIMASU_JOBS_NAMESPACE
    verify: ssl.SSLContext | bool = tls(conn) or True
    try:
        with httpx.Client(headers=conn.headers, verify=verify, timeout=timeout) as client:
            pods = client.get(pods_url(conn, namespace, job_id, attempt))
            pod = running_pod(pods.json()) if pods.status_code == 200 else None
            if pod is None:
                return None
            path = f"{base_path.strip('/')}/api/status"
            answer = client.get(proxy_url(conn, namespace, pod, port, path))
            return parse_activity(answer.json()) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
