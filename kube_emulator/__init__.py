"""A focused Kubernetes API server emulator for Karimasu's tests and demo.

It serves, over real HTTP, the API subset the cluster backend uses (core/v1 nodes, pods and
their log, namespaces, events; batch/v1 jobs: get, list, watch, create, replace, patch, delete,
selectors, resourceVersions, Status errors) and simulates the cluster behind it (scheduler with
GPU accounting, Job controller, kubelet, garbage collector) on an injectable clock.

Plain Python, no Django. Entry points: :func:`start_emulator` and
``python -m kube_emulator``. Module map:

- ``server``: HTTP; ``api``: verbs; ``store``: objects, versions, watch history;
- ``resources``, ``selectors``, ``patches``, ``validation``, ``errors``, ``quantities``;
- ``openapi`` (schemas, unknown fields), ``deletion`` (graceful, finalizers, propagation),
  ``tables`` (kubectl's server-side printing), ``protobuf`` (kubectl generators' bodies);
- ``controller`` (the loop, taint eviction), ``scheduling``, ``jobs``, ``kubelet`` (simulation
  annotations), ``admission`` (QoS class, default tolerations), ``events``; ``nodes`` (nodes
  file format); ``clock``;
- ``processes`` (pods run as real local processes), ``proxy`` (``pods/proxy``, HTTP and
  WebSocket), ``workspace`` (the stand-in workspace server those pods run).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .api import Api
from .clock import Clock, FakeClock, RealClock
from .controller import ClusterController
from .kubelet import ANNOTATIONS, ENV_VARS, SimulationParams
from .nodes import DEFAULT_NODES_FILE, NodesFileError, load_cluster_spec
from .server import EmulatorHTTPServer
from .store import DEFAULT_HISTORY, Store

__all__ = [
    "ANNOTATIONS",
    "DEFAULT_NODES_FILE",
    "ENV_VARS",
    "ClusterController",
    "EmulatorHandle",
    "FakeClock",
    "NodesFileError",
    "RealClock",
    "SimulationParams",
    "start_emulator",
    "write_kubeconfig",
]

CONTEXT_NAME = "karimasu-emulator"


def write_kubeconfig(path: str | Path, url: str, namespace: str = "default") -> Path:
    """Write a kubeconfig for ``url`` (plain HTTP, no credentials); returns the path.

    ``kubernetes.config.load_kube_config(config_file=path)`` and ``kubectl`` accept it.
    """
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT_NAME, "user": {}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


@dataclass
class EmulatorHandle:
    """A running emulator: its address, its state, and switches for tests.

    ``stop()``/``restart()`` take the HTTP server down and bring it back on the same port with
    all state kept (the API server restarting); the simulated cluster keeps running meanwhile.
    ``close()`` stops everything for good. Usable as a context manager (closes on exit).
    """

    host: str
    port: int
    store: Store
    controller: ClusterController
    api: Api
    clock: Clock
    kubeconfig_path: Path | None = None
    _server: EmulatorHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, the server URL in the kubeconfig."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the HTTP server answers."""
        return self._server is not None

    def _serve(self) -> None:
        server = EmulatorHTTPServer((self.host, self.port), self.api)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            # A short poll makes stop() quick (tests stop one server each); the idle cost of
            # 100 wake-ups a second is negligible.
            kwargs={"poll_interval": 0.01},
            name=f"k8s-emulator-http-{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Take the HTTP server down (open watches and log streams are cut); state is kept."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.drop_connections()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def restart(self) -> None:
        """Start the HTTP server again on the same port (after :meth:`stop`)."""
        self.stop()
        self._serve()

    def close(self) -> None:
        """Stop the HTTP server and the real-time ticker, and kill every Pod's local process."""
        self.stop()
        self.controller.stop_ticker()
        self.controller.kubelet.processes.kill_all()

    def settle(self) -> int:
        """Run controller steps until nothing changes; returns the passes run."""
        return self.controller.settle()

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """Move a FakeClock forward by ``seconds`` in ``step``-sized moves, settling after each.

        Small steps let timed events (a Pod finishing, back-off ending, a deadline) happen in
        order within one call. Raises TypeError with a real clock.
        """
        if not isinstance(self.clock, FakeClock):
            raise TypeError("advance() needs the emulator to run on a FakeClock")
        self.settle()
        remaining = seconds
        while remaining > 1e-9:
            move = min(step, remaining)
            self.clock.advance(move)
            remaining -= move
            self.settle()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    nodes_file: str | Path | None = None,
    clock: Clock | None = None,
    kubeconfig_path: str | Path | None = None,
    *,
    tick_interval: float | None = None,
    history_limit: int = DEFAULT_HISTORY,
    namespace: str = "karimasu-jobs",
) -> EmulatorHandle:
    """Start an emulator and return its handle.

    - ``port=0`` picks a free port (read it from ``handle.port``).
    - ``nodes_file``: see :mod:`.nodes` for the format; None loads ``nodes.default.yaml``
      (4 nodes x 2 Tesla V100 and the ``karimasu-jobs`` namespace). NodesFileError if bad.
    - ``clock``: None means real time with a ticker thread stepping the controller every
      ``tick_interval`` seconds (default 0.2). With a :class:`FakeClock` there is no ticker
      unless ``tick_interval`` is given: the test calls ``handle.settle()``/``handle.advance()``.
    - ``kubeconfig_path``: where to write a kubeconfig whose context namespace is ``namespace``.
    - ``history_limit``: how many watch events are kept before older resourceVersions get 410.
    """
    spec = load_cluster_spec(nodes_file)
    clock = clock or RealClock()
    store = Store(clock, history_limit=history_limit)
    controller = ClusterController(store)
    controller.seed(spec)
    handle = EmulatorHandle(host, port, store, controller, Api(store, controller), clock)
    handle._serve()
    if kubeconfig_path is not None:
        handle.kubeconfig_path = write_kubeconfig(kubeconfig_path, handle.url, namespace)
    if tick_interval is None and not isinstance(clock, FakeClock):
        tick_interval = 0.2
    if tick_interval is not None:
        controller.start_ticker(tick_interval)
    return handle
