"""Run every benchmark (or those named on the command line) and print their results."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile

BENCHMARKS = [
    "api_auth",
    "bookings",
    "scheduler_cycle",
    "scheduler_replays",
    "scheduler_production",
    "querygate_analysis",
    "querygate_sandbox",
    "querygate_export",
    "telemetry_ingest",
    "emulator_api",
    "emulator_proxy",
    "pages",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    # A throwaway SQLite database and broker folder: benchmarks never touch the demo's state.
    var = tempfile.mkdtemp(prefix="karimasu-bench-")
    os.environ.setdefault("KARIMASU_VAR_DIR", var)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{var}/bench.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    python = sys.version.split()[0]
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, Python {python}")
    for name in args.names or BENCHMARKS:
        module = __import__(f"benchmarks.{name}", fromlist=["run"])
        module.run()


if __name__ == "__main__":
    main()
