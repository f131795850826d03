"""The differential suite: the same probes against the emulator or a real cluster.

By default each probe starts an emulator in real time (its controllers tick on their own, as a
cluster's do). With ``KARIMASU_CONFORMANCE_KUBECONFIG=/path/to/kubeconfig`` the same probes,
with the same assertions, run against that cluster instead: each in a namespace of its own
(``karimasu-conformance-<random>``), deleted afterwards. Probes only use what any conformant
cluster has (busybox images, suspended Jobs, server-side dry runs for node changes); the
kubectl probes need ``kubectl`` on PATH and fail without it.

    KARIMASU_CONFORMANCE_KUBECONFIG=~/.kube/config .venv/bin/python -m pytest \\
        tests/kube_emulator/conformance
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from kube_emulator import start_emulator

REAL_KUBECONFIG = os.environ.get("KARIMASU_CONFORMANCE_KUBECONFIG")


@dataclass
class Answer:
    """A raw HTTP answer: status, headers, body (parsed as JSON when it is)."""

    status: int
    headers: dict[str, str]
    raw: bytes
    warnings: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Cluster:
    """Where the probes run: a kubeconfig, a namespace of their own, and ways to call it."""

    kubeconfig: Path
    namespace: str
    api_client: client.ApiClient
    real: bool
    cache_dir: Path | None = None  # kubectl's discovery cache

    @property
    def url(self) -> str:
        return self.api_client.configuration.host

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        raw: bytes | None = None,
    ) -> Answer:
        """One HTTP call with the kubeconfig's credentials; never raises on a status."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        self.api_client.update_params_for_auth(headers, None, ["BearerToken"])
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        context = None
        if self.url.startswith("https"):
            import ssl

            ssl_config = self.api_client.configuration
            context = ssl.create_default_context(cafile=ssl_config.ssl_ca_cert)
            if ssl_config.cert_file:
                context.load_cert_chain(ssl_config.cert_file, ssl_config.key_file)
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                answer = Answer(response.status, dict(response.headers), response.read())
                answer.warnings = response.headers.get_all("Warning") or []
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, dict(error.headers), error.read())
            answer.warnings = error.headers.get_all("Warning") or []
        return answer

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> Any:
        """Run kubectl against the cluster (in the probe namespace); returns CompletedProcess."""
        binary = shutil.which("kubectl")
        if binary is None:
            pytest.fail("kubectl is not installed: `make test` installs Debian's kubernetes-client")
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        # A cache of its own: kubectl keys its discovery cache by host:port, and a port an
        # earlier emulator used must not answer from that one's documents.
        cache = self.cache_dir or Path(tempfile.gettempdir()) / f"kube-cache-{self.namespace}"
        return subprocess.run(
            [binary, f"--cache-dir={cache}", "--namespace", self.namespace, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    def wait_for(self, what: str, check: Callable[[], Any], seconds: float = 90) -> Any:
        """Poll ``check`` until it returns something truthy; fails after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    handle = None
    if REAL_KUBECONFIG:
        kubeconfig = Path(REAL_KUBECONFIG).expanduser()
    else:
        handle = start_emulator(kubeconfig_path=tmp_path / "kubeconfig", tick_interval=0.05)
        assert handle.kubeconfig_path is not None
        kubeconfig = handle.kubeconfig_path
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    core = client.CoreV1Api(api_client)
    namespace = f"karimasu-conformance-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        yield Cluster(kubeconfig, namespace, api_client, handle is None, tmp_path / "kube-cache")
    finally:
        try:
            core.delete_namespace(namespace)
        finally:
            api_client.close()
            if handle is not None:
                handle.close()


@functools.cache
def kubectl_minor() -> int:
    """The minor version of the kubectl on PATH (20 for Debian bookworm's, 33 for 1.33): the
    probes whose commands or output differ between releases adapt to it."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.fail("kubectl is not installed: `make test` installs Debian's kubernetes-client")
    shown = subprocess.run(
        [binary, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    minor = json.loads(shown.stdout)["clientVersion"]["minor"]
    return int("".join(c for c in minor if c.isdigit()))  # "20+" in some builds


def job_manifest(name: str, *, suspend: bool = False, **extra: Any) -> dict[str, Any]:
    """A small Job every cluster can run (busybox printing a line), as a plain dict."""
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"probe": "conformance"}},
        "spec": {
            "suspend": suspend,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"probe": "conformance"}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "echo conformance-probe; sleep 1"],
                            "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
                        }
                    ],
                },
            },
        },
    }
    for key, value in extra.items():
        job["spec"][key] = value
    return job
