"""A stand-in workspace server (what JupyterLab is on a real GPU node), for the emulator.

``python -m kube_emulator.workspace`` serves, on ``127.0.0.1:$PORT`` (default 8888), under the
base path ``$KARIMASU_BASE_URL`` (default ``/``; JupyterLab's ``base_url``):

- ``{base}``: an HTML page titled "Karimasu workspace" showing the hostname and the GPU and
  Karimasu env vars, with a little script that opens a WebSocket to ``{base}ws/echo`` and shows
  the echo;
- ``{base}ws/echo``: a WebSocket that sends every message back as it came (text or bytes);
- ``{base}api/status``: ``{"last_activity": "<ISO 8601, UTC>", "connections": N}``, as
  JupyterLab's ``/api/status`` (which also has ``started``, ``kernels``): the last request or
  WebSocket message (polling ``api/status`` itself is not activity) and the open WebSockets;
  the portal's idle culling reads it.

Anything else is a 404; a path outside the base too. The WebSocket server is the
``websockets`` library (its HTTP side answers GET only). SIGTERM and SIGINT end it with exit
code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import signal
import socket
import sys
from datetime import UTC, datetime
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

DEFAULT_PORT = 8888
BASE_ENV = "KARIMASU_BASE_URL"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SHOWN_ENV_PREFIXES = ("CUDA_", "NVIDIA_", "KARIMASU_")

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Karimasu workspace on {host}</title></head>
<body>
<h1>Karimasu workspace</h1>
<p>Host: <code>{host}</code></p>
<table>{env}</table>
<p>WebSocket echo: <span id="echo">connecting...</span></p>
<script>
const url = new URL({ws_path}, window.location.href);
url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
const socket = new WebSocket(url);
socket.onopen = () => socket.send("hello from the browser");
socket.onmessage = (event) => {{ document.getElementById("echo").textContent = event.data; }};
socket.onerror = () => {{ document.getElementById("echo").textContent = "failed"; }};
</script>
</body>
</html>
"""


def normalize_base(value: str | None) -> str:
    """``/s/1`` -> ``/s/1/``; empty -> ``/``."""
    base = "/" + (value or "").strip("/")
    return base if base == "/" else base + "/"


class Workspace:
    """The server's state: base path, activity, open WebSockets."""

    def __init__(self, base: str) -> None:
        self.base = normalize_base(base)
        self.last_activity = datetime.now(UTC)
        self.connections = 0

    def touch(self) -> None:
        self.last_activity = datetime.now(UTC)

    def status(self) -> dict[str, object]:
        return {
            "last_activity": self.last_activity.isoformat().replace("+00:00", "Z"),
            "connections": self.connections,
        }

    def page(self) -> str:
        shown = sorted((k, v) for k, v in os.environ.items() if k.startswith(SHOWN_ENV_PREFIXES))
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in shown
        )
        host = html.escape(os.environ.get("HOSTNAME") or socket.gethostname())
        ws_path = json.dumps(self.base + "ws/echo").replace("<", "\\u003c")
        return PAGE.format(host=host, env=rows, ws_path=ws_path)

    def _respond(self, status: HTTPStatus, body: bytes, content_type: str) -> Response:
        headers = Headers(
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ]
        )
        return Response(status.value, status.phrase, headers, body)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP requests; None lets a WebSocket handshake on ``ws/echo`` go on."""
        path = request.path.split("?", 1)[0]
        if not (path + "/").startswith(self.base):
            return self._respond(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        rest = path[len(self.base) :] if len(path) >= len(self.base) else ""
        if rest == "api/status":
            body = json.dumps(self.status()).encode()
            return self._respond(HTTPStatus.OK, body, "application/json")
        self.touch()
        if rest == "ws/echo":
            if "upgrade" not in request.headers.get("Connection", "").lower():
                body = b"this endpoint speaks WebSocket\n"
                return self._respond(HTTPStatus.UPGRADE_REQUIRED, body, "text/plain")
            return None
        if rest in ("", "index.html"):
            body = self.page().encode()
            return self._respond(HTTPStatus.OK, body, "text/html; charset=utf-8")
        return self._respond(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    async def echo(self, connection: ServerConnection) -> None:
        self.connections += 1
        try:
            async for message in connection:
                self.touch()
                await connection.send(message)
        except ConnectionClosed:
            pass
        finally:
            self.connections -= 1
            self.touch()


async def run(host: str, port: int, base: str) -> None:
    workspace = Workspace(base)
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(
        workspace.echo,
        host,
        port,
        process_request=workspace.process_request,
        max_size=MAX_MESSAGE_BYTES,
        server_header="karimasu-workspace",
    ):
        print(f"Karimasu workspace on http://{host}:{port}{workspace.base}", flush=True)
        await stop
    print("Karimasu workspace stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kube_emulator.workspace", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT") or DEFAULT_PORT), help="port"
    )
    parser.add_argument("--base-url", default=os.environ.get(BASE_ENV, "/"), help="base path")
    args = parser.parse_args(argv)
    asyncio.run(run(args.host, args.port, args.base_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
