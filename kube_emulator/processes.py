"""Real local processes for the Pods that ask for one (workspaces behind the pod proxy).

A Pod whose annotation ``emulator.karimasu.io/run`` is

- ``process``: its first container's ``command`` + ``args`` run as a local subprocess (with
  ``$(VAR)`` expanded from the container's env, as the kubelet does); a container without a
  ``command`` (the image's entrypoint, which the emulator cannot know) runs the stand-in
  workspace;
- ``workspace``: the stand-in workspace (``python -m kube_emulator.workspace``) runs whatever
  the container says, so a Pod spec written for a real cluster (``jupyter lab ...``) works
  unchanged on the emulator.

Every other Pod stays simulated (:mod:`.kubelet`).

The process binds 127.0.0.1 only, on a free local port the kubelet picks per declared
``containerPort`` (several Pods share the host): the first declared port's is in ``PORT``,
each one's in ``PORT_<containerPort>``. The proxy maps the declared port onto it. The env is
not the emulator's: ``PATH``, ``LANG``, ``LC_ALL``, ``TZ`` from it, ``HOME`` (a fresh
directory per run, removed afterwards), ``HOSTNAME`` (the Pod's name), ``PYTHONUNBUFFERED=1``,
``PYTHONPATH`` (so ``kube_emulator`` imports), then the container's ``env`` (plain ``value``
entries; ``valueFrom`` is not resolved), then the ports.

Each run is its own session (process group): SIGTERM and SIGKILL go to the group, so what
the process started goes too. As a backstop, on Linux the child gets SIGKILL when the thread
that started it ends (``PR_SET_PDEATHSIG``): an emulator killed with SIGKILL leaves no
workspace behind. Its stdout and stderr are the container log (the last
:data:`MAX_LOG_LINES` lines kept, each cut at :data:`MAX_LINE_BYTES`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

RUN_ANNOTATION = "emulator.karimasu.io/run"
RUN_PROCESS = "process"
RUN_WORKSPACE = "workspace"
PORT_ENV = "PORT"
WORKSPACE_MODULE = "kube_emulator.workspace"
MAX_LOG_LINES = 10_000
MAX_LINE_BYTES = 16_384
KILL_WAIT_SECONDS = 5.0
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
_PR_SET_PDEATHSIG = 1
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def run_mode(pod: Obj) -> str | None:
    """``process`` or ``workspace`` when the Pod asks to run as a local process, else None."""
    value = (pod.get("metadata", {}).get("annotations") or {}).get(RUN_ANNOTATION)
    return value if value in (RUN_PROCESS, RUN_WORKSPACE) else None


def declared_ports(pod: Obj) -> list[int]:
    """The TCP ``containerPort``s of the Pod's containers, in order, without repeats."""
    ports: list[int] = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            number = port.get("containerPort")
            protocol = port.get("protocol") or "TCP"
            if isinstance(number, int) and protocol == "TCP" and number not in ports:
                ports.append(number)
    return ports


def expand(text: str, env: dict[str, str]) -> str:
    """Expand ``$(VAR)`` from ``env`` as the kubelet does: unknown stays, ``$$`` is ``$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR.sub(one, text)


def _free_ports(count: int, taken: set[int]) -> list[int]:
    """``count`` distinct ports nothing listens on now, none of ``taken`` (another process
    may still take one before the child binds it)."""
    probes: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)  # held open until all are picked: no repeats
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            if port not in taken:
                ports.append(port)
    finally:
        for probe in probes:
            probe.close()
    return ports


def _pdeathsig_setter() -> Callable[[], None] | None:
    """What the child runs between fork and exec to get SIGKILL when its parent thread ends.

    libc is looked up here, in the parent: a ``dlopen`` in the child of a threaded process
    could deadlock on the loader's lock."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    kill = int(signal.SIGKILL)

    def die_with_parent() -> None:  # pragma: no cover - runs in the child
        prctl(_PR_SET_PDEATHSIG, kill)

    return die_with_parent


_DIE_WITH_PARENT = _pdeathsig_setter()


def exit_code_of(returncode: int) -> int:
    """A container's exit code: a process killed by signal N exits 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class StartError(Exception):
    """The process could not be started (no such executable, ...); the container fails."""


@dataclass
class LocalProcess:
    """One run of a Pod's container as a local process."""

    popen: subprocess.Popen[bytes]
    ports: dict[int, int]  # declared containerPort -> local port
    home: str
    now: Callable[[], float]
    lines: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    terminating: bool = False
    reader: threading.Thread | None = None
    _lines_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def returncode(self) -> int | None:
        """The container exit code once the process ended, else None."""
        code = self.popen.poll()
        return None if code is None else exit_code_of(code)

    def listening(self) -> bool:
        """True when every declared port accepts a connection on 127.0.0.1."""
        for local in self.ports.values():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.2)
                if probe.connect_ex(("127.0.0.1", local)) != 0:
                    return False
        return True

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the process group (the process and what it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def log(self) -> list[tuple[float, str]]:
        """The log lines so far, as (time, line) pairs (a copy: the reader keeps appending)."""
        with self._lines_lock:
            return list(self.lines)

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._lines_lock:
                self.lines.append((self.now(), text))
        stream.close()


class ProcessRunner:
    """The local processes of the Pods that run as one, by Pod uid. Thread-safe."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._runs: dict[str, LocalProcess] = {}

    def start(self, uid: str, pod: Obj) -> LocalProcess:
        """Start the Pod's container as a process (ending its previous run first)."""
        self.kill(uid)
        container = (pod["spec"].get("containers") or [{}])[0]
        mode = run_mode(pod)
        declared = declared_ports(pod)
        with self._lock:
            taken = {port for run in self._runs.values() for port in run.ports.values()}
        ports = dict(zip(declared, _free_ports(len(declared), taken), strict=True))
        home = tempfile.mkdtemp(prefix=f"karimasu-pod-{pod['metadata']['name'][:40]}-")
        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        env.update(
            HOME=home,
            HOSTNAME=pod["metadata"]["name"],
            PYTHONUNBUFFERED="1",
            PYTHONPATH=_PACKAGE_PARENT,
        )
        for entry in container.get("env") or []:
            name, value = entry.get("name"), entry.get("value")
            if isinstance(name, str) and isinstance(value, str):
                env[name] = expand(value, env)
        if ports:
            env[PORT_ENV] = str(next(iter(ports.values())))
        env.update({f"{PORT_ENV}_{declared}": str(local) for declared, local in ports.items()})
        command = [str(c) for c in container.get("command") or []]
        if mode == RUN_WORKSPACE or not command:
            argv = [sys.executable, "-m", WORKSPACE_MODULE]
        else:
            argv = [expand(part, env) for part in command + list(container.get("args") or [])]
        try:
            popen = subprocess.Popen(  # noqa: S603 - the Pod's own command, as a kubelet runs it
                argv,
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_DIE_WITH_PARENT,
            )
        except (OSError, ValueError) as exc:
            shutil.rmtree(home, ignore_errors=True)
            raise StartError(f"exec: {argv[0]!r}: {exc}") from exc
        run = LocalProcess(popen, ports, home, self._now)
        assert popen.stdout is not None
        run.reader = threading.Thread(
            target=run._read, args=(popen.stdout,), name=f"pod-log-{popen.pid}", daemon=True
        )
        run.reader.start()
        with self._lock:
            self._runs[uid] = run
        logger.info("pod %s runs as process %s on %s", pod["metadata"]["name"], popen.pid, ports)
        return run

    def get(self, uid: str) -> LocalProcess | None:
        with self._lock:
            return self._runs.get(uid)

    def local_port(self, uid: str, declared: int) -> int | None:
        """The local port serving the Pod's declared ``containerPort``, if it runs."""
        run = self.get(uid)
        if run is None or run.returncode() is not None:
            return None
        return run.ports.get(declared)

    def terminate(self, uid: str) -> None:
        """SIGTERM the run (once): the Pod is being deleted, its grace period runs."""
        run = self.get(uid)
        if run is not None and not run.terminating and run.returncode() is None:
            run.terminating = True
            run.signal_group(signal.SIGTERM)

    def kill(self, uid: str) -> None:
        """SIGKILL the run's process group, reap it and remove its home; no-op if none."""
        with self._lock:
            run = self._runs.pop(uid, None)
        if run is None:
            return
        run.signal_group(signal.SIGKILL)
        try:
            run.popen.wait(timeout=KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            logger.warning("process %s did not die after SIGKILL", run.pid)
        if run.reader is not None:
            run.reader.join(timeout=1.0)
        shutil.rmtree(run.home, ignore_errors=True)

    def kill_all(self) -> None:
        """Kill every run (the emulator stopping: no process may outlive it)."""
        with self._lock:
            uids = list(self._runs)
        for uid in uids:
            self.kill(uid)

    def forget_missing(self, live_uids: set[str]) -> None:
        """Kill the runs of Pods that are gone (grace over, forced, or removed at once)."""
        with self._lock:
            gone = set(self._runs) - live_uids
        for uid in gone:
            self.kill(uid)
