"""The core compiled with mypyc (``scripts/build_core.py``) decides exactly as its Python
sources do, and a build of other sources is never used (issue 17, faster cycles)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import scheduler.core as core
from scheduler.core._native import fresh_build as _fresh_build

ROOT = Path(__file__).resolve().parents[3]

# Decisions of several cycles (gangs, pinned jobs, other configurations: the oracle
# test's snapshots) as one digest, and whether the compiled modules ran.
PROBE = """
import hashlib, pickle, scheduler.core as core
from tests.scheduler.core.test_oracle import _snapshots
digest = hashlib.sha256()
for name, snap in _snapshots()[:8]:
    r = core.plan_cycle(snap)
    digest.update(pickle.dumps((name, r.admitted, r.preempted, r.released, r.waiting)))
print(core.COMPILED, digest.hexdigest())
"""


def _run(pure: bool) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if k != "KARIMASU_PURE_CORE"}
    if pure:
        env["KARIMASU_PURE_CORE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600, check=True,
    )  # fmt: skip
    compiled, digest = done.stdout.split()
    return compiled == "True", digest


def test_the_compiled_core_decides_as_the_python_one():
    built = _fresh_build(ROOT / "scheduler" / "core") is not None
    pure_compiled, pure = _run(pure=True)
    compiled, default = _run(pure=False)
    assert not pure_compiled
    # A fresh build is used (make venv builds one wherever a C compiler is found).
    assert compiled == built
    assert default == pure


def _package(tmp_path: Path, **sources: str) -> Path:
    for name, text in sources.items():
        (tmp_path / f"{name}.py").write_text(text)
    (tmp_path / "_compiled").mkdir()
    return tmp_path


def _stamp(package: Path, digests: object) -> None:
    (package / "_compiled" / "SOURCES.json").write_text(json.dumps(digests))


def test_only_a_build_of_these_very_sources_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("KARIMASU_PURE_CORE", raising=False)
    package = _package(tmp_path, cycle="x = 1\n", cache="y = 2\n")
    right = {
        n: hashlib.sha256((package / f"{n}.py").read_bytes()).hexdigest()
        for n in ("cycle", "cache")
    }
    _stamp(package, right)
    assert _fresh_build(package) == package / "_compiled"
    # A source edited since the build: the build is stale, the sources run.
    (package / "cache.py").write_text("y = 3\n")
    assert _fresh_build(package) is None
    # Corrupt, empty or absent stamps, a stamp naming a missing source: never used.
    for stamp in ("not json", "[]", "{}", json.dumps({"gone": "0" * 64})):
        (package / "_compiled" / "SOURCES.json").write_text(stamp)
        assert _fresh_build(package) is None, stamp
    (package / "_compiled" / "SOURCES.json").unlink()
    assert _fresh_build(package) is None


def test_pure_on_request(tmp_path, monkeypatch):
    package = _package(tmp_path, cycle="x = 1\n")
    _stamp(package, {"cycle": hashlib.sha256(b"x = 1\n").hexdigest()})
    monkeypatch.setenv("KARIMASU_PURE_CORE", "1")
    assert _fresh_build(package) is None
    monkeypatch.setenv("KARIMASU_PURE_CORE", "0")
    assert _fresh_build(package) is not None


@pytest.mark.parametrize(
    "name", ["cache", "cycle", "fairshare", "gangs", "placement", "preemption"]
)
def test_compiled_means_every_built_module_runs_compiled(name):
    module = sys.modules[f"scheduler.core.{name}"]
    assert str(module.__file__).endswith(".so") == core.COMPILED
