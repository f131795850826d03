"""Compile the scheduling core's hot modules with mypyc (part of mypy, a pinned dev
dependency) into ``scheduler/core/_compiled/``: ``make venv`` runs it, and again whenever
a core source changes.

The sources stay the only copy of the policy. ``scheduler/core/__init__.py`` uses the
compiled modules only when ``_compiled/SOURCES.json`` names the sha256 of every one of
their sources as they are now (a stale build is ignored: pure Python, never old code),
and never with ``KARIMASU_PURE_CORE=1``. ``decisions`` and ``snapshot`` (the data the
services layer and the simulator build) stay Python.

Needs a C compiler and Python's headers; without them this prints why and exits 0, and
the core runs as pure Python (same decisions, ~1.3x the time: benchmarks/RESULTS.md).

    python scripts/build_core.py [--into DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "scheduler" / "core"
# The modules compiled: the cycle and everything it calls per job, node or GPU.
MODULES = ("cache", "cycle", "fairshare", "gangs", "placement", "preemption")


def digests(core: Path) -> dict[str, str]:
    """sha256 of each compiled module's source, as ``SOURCES.json`` holds them."""
    return {m: hashlib.sha256((core / f"{m}.py").read_bytes()).hexdigest() for m in MODULES}


def build(core: Path, into: Path) -> bool:
    with tempfile.TemporaryDirectory(prefix="karimasu-core-") as tmp:
        work = Path(tmp)
        package = work / "scheduler" / "core"
        package.mkdir(parents=True)
        (work / "scheduler" / "__init__.py").write_text("")
        for source in core.glob("*.py"):
            shutil.copy2(source, package / source.name)
        done = subprocess.run(  # noqa: S603 (this interpreter's mypyc, our own files)
            [sys.executable, "-m", "mypyc", *(f"scheduler/core/{m}.py" for m in MODULES)],
            cwd=work,
            capture_output=True,
            text=True,
            env={**os.environ, "MYPYC_OPT_LEVEL": "3"},
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            print("scheduler core not compiled (pure Python):", *tail, sep="\n  ")
            return False
        built = [p for m in MODULES for p in package.glob(f"{m}.*.so")]
        runtime = list(work.glob("*__mypyc.*.so"))
        if len(built) != len(MODULES):
            print("scheduler core not compiled (pure Python): mypyc built", len(built), "modules")
            return False
        staging = into.with_name(into.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in (*built, *runtime):
            shutil.copy2(path, staging / path.name)
        (staging / "SOURCES.json").write_text(json.dumps(digests(core), indent=1) + "\n")
        shutil.rmtree(into, ignore_errors=True)
        staging.rename(into)  # whole or not at all: the loader checks SOURCES.json
    print(f"scheduler core compiled with mypyc into {into}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=Path, default=CORE / "_compiled")
    parser.add_argument("--core", type=Path, default=CORE, help="the sources to compile")
    args = parser.parse_args()
    build(args.core, args.into)


if __name__ == "__main__":
    main()
