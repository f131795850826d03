"""Show the demo's URL and logins once the demo answers (a process of `make run`).

`seed_demo` prints the logins before the demo's processes start, and their logs soon scroll
them away; this waits until the portal is ready (``/readyz``), prints them again with the
URL, and then stays (honcho stops every process when one exits). ``--once`` returns after
printing.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.management.commands.seed_demo import BANNER_FILE


class Command(BaseCommand):
    help = "Print the demo's URL and logins once the portal answers."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The portal's URL.")
        parser.add_argument("--wait", type=float, default=120.0, help="Seconds to wait at most.")
        parser.add_argument("--once", action="store_true", help="Return after printing.")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"].rstrip("/")
        deadline = time.monotonic() + options["wait"]
        while not _ready(f"{url}/readyz"):
            if time.monotonic() >= deadline:
                raise CommandError(f"{url} did not get ready within {options['wait']:g} s.")
            time.sleep(0.5)
        path = Path(settings.VAR_DIR) / BANNER_FILE
        logins = path.read_text(encoding="utf-8") if path.exists() else "  (run seed_demo)\n"
        rule = "=" * 78
        self.stdout.write(f"\n{rule}\n  Karimasu is ready: {url}/   (API docs: {url}/api/docs/)")
        self.stdout.write(
            f"  SQL editor {url}/sql/ · jobs {url}/jobs/ · bookings {url}/bookings/\n"
        )
        self.stdout.write(logins.rstrip("\n"))
        self.stdout.write(f"\n  Ctrl-C stops everything.\n{rule}\n")
        self.stdout.flush()
        if not options["once"]:
            signal.pause()  # stay: honcho ends the demo when a process exits


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
