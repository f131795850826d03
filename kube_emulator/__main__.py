"""``python -m kube_emulator``: run the emulator in real time until Ctrl-C.

Prints the server URL (one line, first) and, with ``--kubeconfig``, writes a kubeconfig there.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import NodesFileError, start_emulator


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the emulator, block until SIGINT/SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m kube_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--nodes-file", default=None, help="nodes YAML (default: 4 x 2 V100)")
    parser.add_argument("--kubeconfig", default=None, help="write a kubeconfig to this path")
    parser.add_argument("--namespace", default="karimasu-jobs", help="kubeconfig namespace")
    args = parser.parse_args(argv)
    try:
        handle = start_emulator(
            host=args.host,
            port=args.port,
            nodes_file=args.nodes_file,
            kubeconfig_path=args.kubeconfig,
            namespace=args.namespace,
        )
    except (NodesFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(handle.url, flush=True)
    if handle.kubeconfig_path is not None:
        print(f"kubeconfig written to {handle.kubeconfig_path}", flush=True)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    try:
        while not done.wait(1.0):
            pass
    finally:
        handle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
