"""Engine calls in a child process that can be bounded and killed for certain.

DuckDB runs inside the process that calls it, and it does not honour ``interrupt()`` while it
builds a list or a string: ``SELECT len(range(100000000))`` grew a web worker past 9 GB with
every timer fired. So no DuckDB call (EXPLAIN, execution, catalog) runs in the web or worker
process. Each runs in a **child process** with:

- ``RLIMIT_AS`` (address space) at ``Limits.memory_bytes`` and DuckDB's own ``memory_limit``
  below it, ``threads`` capped, ``RLIMIT_CPU`` a little past the deadline times the threads;
- a private temporary directory with ``max_temp_directory_size`` (spill is bounded, and its
  peak is measured and reported back for the budget);
- one deadline: at the deadline (or on cancel) the parent asks the child to ``interrupt()``,
  waits ``Limits.grace_s``, then sends ``SIGKILL`` — so a call ends within deadline + grace
  whatever the engine is doing;
- a reply read with a size limit (``Limits.max_reply_bytes``): a child cannot make the
  caller allocate more than that.

Children are forked by a small **zygote** process per calling process (started on first use
with the engine modules preloaded, so a call costs a ``fork`` instead of an interpreter start:
see benchmarks/RESULTS.md). The zygote inherits nothing from the caller but ``sys.path`` and
the environment; it exits when its caller closes the socket (or dies).

Protocol: the caller sends the zygote one byte and one end of a fresh socket pair (SCM_RIGHTS);
the zygote forks and answers the child's pid; the child reads its request (a pickle) from its
end and answers on it: ``("handle", dict)`` once started, then ``("ok", value)`` or
``("error", kind, message)``; the caller may send ``"interrupt"``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from querygate.errors import EngineError, QueryInterrupted

log = logging.getLogger("karimasu.querygate")

MIB = 1024**2


@dataclass(frozen=True)
class Limits:
    """What one engine call may use. ``memory_bytes`` bounds the child's address space;
    ``max_result_bytes`` the rows it returns (more are cut, ``truncated`` set)."""

    memory_bytes: int = 2048 * MIB
    threads: int = 2
    temp_bytes: int = 1024 * MIB
    max_result_bytes: int = 32 * MIB
    grace_s: float = 1.0

    @property
    def max_reply_bytes(self) -> int:
        # Rows are cut at max_result_bytes by their values' sizes; pickling adds framing.
        return 2 * self.max_result_bytes + 4 * MIB


DEFAULT_LIMITS = Limits()


class SandboxDied(EngineError):
    """The child ended without an answer (killed by a limit, or crashed)."""


# ---------------------------------------------------------------------------- caller side


class _Zygote:
    """The fork server of one calling process (re-created after a fork of the caller)."""

    def __init__(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["KARIMASU_ZYGOTE_FD"] = str(child.fileno())
        # Arrow's default allocator (jemalloc) reserves address space up front, which the
        # children's RLIMIT_AS counts: exports use the system allocator.
        env["ARROW_DEFAULT_MEMORY_POOL"] = "system"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "querygate.engines.sandbox"],
            pass_fds=[child.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
        child.close()
        self.socket = parent
        self.owner = os.getpid()
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def fork(self, channel: socket.socket) -> int:
        with self.lock:
            socket.send_fds(self.socket, [b"F"], [channel.fileno()])
            data = _recv_exact(self.socket, 4)
        return int(struct.unpack("!i", data)[0])

    def kill(self, pid: int) -> None:
        """SIGKILL ``pid`` if it is still a child the zygote has not reaped (a pid that was
        reaped may belong to another process by now: the zygote, its parent, knows)."""
        with self.lock:
            self.socket.sendall(b"K" + struct.pack("!i", pid))
            _recv_exact(self.socket, 4)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.close()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=2)


_zygote: _Zygote | None = None
_zygote_lock = threading.Lock()


def _get_zygote() -> _Zygote:
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.alive():
            if _zygote is not None and _zygote.owner == os.getpid():
                _zygote.close()
            _zygote = _Zygote()
        return _zygote


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise SandboxDied("the engine sandbox's fork server is gone")
        data += chunk
    return data


def run(
    task: str,
    payload: dict[str, Any],
    *,
    timeout_s: float,
    limits: Limits = DEFAULT_LIMITS,
    cancel: threading.Event | None = None,
    on_handle: Callable[[dict[str, Any]], None] | None = None,
    poll_s: float = 0.05,
) -> Any:
    """Run ``task`` (``"module:function"`` in the child) on ``payload`` under ``limits``;
    return its value, or raise ``QueryInterrupted`` (deadline: the message starts with
    "timeout"; cancel: "interrupted") or ``EngineError``."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        zygote, pid = _fork(theirs)
    finally:
        theirs.close()
    channel = Connection(ours.detach())
    finished = False
    try:
        channel.send_bytes(pickle.dumps((task, payload, limits, timeout_s)))
        value = _await(channel, pid, timeout_s, limits, cancel, on_handle, poll_s, zygote)
        finished = True
        return value
    finally:
        channel.close()
        if not finished:
            _kill(zygote, pid)


def _fork(channel: socket.socket) -> tuple[_Zygote, int]:
    for attempt in (1, 2):
        zygote = _get_zygote()
        try:
            return zygote, zygote.fork(channel)
        except (OSError, SandboxDied):
            if attempt == 2:
                raise SandboxDied("the engine sandbox could not start a process") from None
            with _zygote_lock:
                zygote.close()
    raise AssertionError("unreachable")


def _await(
    channel: Connection,
    pid: int,
    timeout_s: float,
    limits: Limits,
    cancel: threading.Event | None,
    on_handle: Callable[[dict[str, Any]], None] | None,
    poll_s: float,
    zygote: _Zygote,
) -> Any:
    deadline = time.monotonic() + timeout_s
    stopping: str | None = None  # "timeout" or "interrupted", once asked to stop
    kill_at = float("inf")
    while True:
        now = time.monotonic()
        if stopping is None and (now >= deadline or (cancel is not None and cancel.is_set())):
            stopping = "timeout" if now >= deadline else "interrupted"
            with contextlib.suppress(OSError):
                channel.send_bytes(b"interrupt")
            kill_at = now + limits.grace_s
        if now >= kill_at:
            _kill(zygote, pid)
            raise QueryInterrupted(_stopped_message(stopping, timeout_s, killed=True))
        wait = min(poll_s, max(0.0, (kill_at if stopping else deadline) - now))
        if cancel is None and stopping is None:
            wait = max(0.0, deadline - now)
        try:
            ready = channel.poll(wait)
        except (OSError, EOFError):
            ready = True
        if not ready:
            continue
        try:
            message = pickle.loads(channel.recv_bytes(limits.max_reply_bytes))  # noqa: S301 - our child's reply
        except EOFError:
            if stopping:
                raise QueryInterrupted(_stopped_message(stopping, timeout_s)) from None
            raise SandboxDied(_died_message(pid, limits)) from None
        except OSError as error:
            _kill(zygote, pid)
            raise EngineError(
                f"the engine's answer is larger than {limits.max_reply_bytes // MIB} MiB: "
                "select fewer or narrower columns"
            ) from error
        kind = message[0]
        if kind == "handle":
            if on_handle is not None:
                on_handle(message[1])
            continue
        if kind == "ok":
            return message[1]
        if stopping or message[1] == "interrupted":
            raise QueryInterrupted(_stopped_message(stopping or "interrupted", timeout_s))
        raise EngineError(message[2])


def _stopped_message(reason: str | None, timeout_s: float, *, killed: bool = False) -> str:
    how = " (the engine process was killed)" if killed else ""
    if reason == "timeout":
        return f"timeout: the engine call passed its {timeout_s:g} s budget{how}"
    return f"interrupted: the engine call was cancelled{how}"


def _died_message(pid: int, limits: Limits) -> str:
    return (
        f"the engine process ended without an answer: it passed a limit "
        f"({limits.memory_bytes // MIB} MiB of memory or its CPU time) or crashed"
    )


def _kill(zygote: _Zygote, pid: int) -> None:
    with contextlib.suppress(OSError, SandboxDied):
        zygote.kill(pid)


# ----------------------------------------------------------------------------- child side


def _serve_child(sock: socket.socket) -> None:
    """In the forked child: read the request, apply the limits, run the task, answer."""
    channel = Connection(sock.detach())
    task, payload, limits, timeout_s = pickle.loads(channel.recv_bytes())  # noqa: S301 - from our caller
    _apply_limits(limits, timeout_s)
    module_name, function_name = task.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    try:
        value = function(payload, limits, _ChildChannel(channel))
        reply = pickle.dumps(("ok", value))
    except MemoryError:
        reply = pickle.dumps(("error", "memory", "the engine ran out of its memory budget"))
    except Exception as error:  # the caller gets every failure as a message
        kind = getattr(error, "sandbox_kind", "error")
        reply = pickle.dumps(("error", kind, str(error).strip() or type(error).__name__))
    with contextlib.suppress(OSError):
        channel.send_bytes(reply)


class _ChildChannel:
    """What a task sees of its channel: send the handle, and a callback on ``interrupt``."""

    def __init__(self, channel: Connection) -> None:
        self._channel = channel
        self._lock = threading.Lock()

    def send_handle(self, handle: dict[str, Any]) -> None:
        with self._lock:
            self._channel.send_bytes(pickle.dumps(("handle", handle)))

    def on_interrupt(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from a thread) when the caller asks to stop, or goes away."""

        def listen() -> None:
            with contextlib.suppress(EOFError, OSError):
                self._channel.recv_bytes(64)
            with contextlib.suppress(Exception):  # e.g. the connection is already closed
                callback()

        threading.Thread(target=listen, daemon=True).start()


def _apply_limits(limits: Limits, timeout_s: float) -> None:
    import resource

    memory = max(limits.memory_bytes, 256 * MIB)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int((timeout_s + limits.grace_s + 2) * max(1, limits.threads)) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _zygote_main() -> None:
    """The fork server: preload the engines, then fork one child per request."""
    # Preloaded once: a forked child finds them imported.
    import duckdb  # noqa: F401
    import psycopg  # noqa: F401

    from querygate.engines import sandbox_tasks  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    server = socket.socket(fileno=int(os.environ.pop("KARIMASU_ZYGOTE_FD")))
    children: set[int] = set()
    while True:
        _reap(children)
        try:
            message, fds, _flags, _addr = socket.recv_fds(server, 5, 1)
        except OSError:
            return
        if not message:
            return  # the caller closed its end, or died
        if message[:1] == b"K":
            rest = 5 - len(message)
            data = message[1:] + (_recv_exact(server, rest) if rest > 0 else b"")
            (victim,) = struct.unpack("!i", data[:4])
            if victim in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
            server.sendall(struct.pack("!i", 0))
            continue
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            server.close()
            code = 0
            try:
                _serve_child(socket.socket(fileno=fds[0]))
            except BaseException:  # a child never returns into the zygote loop
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])
        children.add(pid)
        server.sendall(struct.pack("!i", pid))


def _reap(children: set[int]) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)


if __name__ == "__main__":
    _zygote_main()
