"""Where this package's modules are loaded from: the compiled ones (``scripts/build_core.py``,
mypyc, in ``_compiled/``) first, but only when that build is of these very sources
(``SOURCES.json``: the sha256 of each) and ``KARIMASU_PURE_CORE`` is not ``1``; else the
Python sources. Imported by ``scheduler/core/__init__.py`` before any other module of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def fresh_build(here: Path) -> Path | None:
    """``here/_compiled`` if it holds a build of the sources in ``here`` as they are now."""
    built = here / "_compiled"
    if os.environ.get("KARIMASU_PURE_CORE") == "1":
        return None
    try:
        sources = json.loads((built / "SOURCES.json").read_text(encoding="utf-8"))
        fresh = bool(sources) and all(
            hashlib.sha256((here / f"{name}.py").read_bytes()).hexdigest() == digest
            for name, digest in sources.items()
        )
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return built if fresh else None


def _use(built: Path | None) -> bool:
    """Put ``built`` first on the package's path; True if there is one."""
    if built is None:
        return False
    package = sys.modules[__name__.rpartition(".")[0]]
    package.__path__.insert(0, str(built))  # the package's modules: the compiled ones first
    sys.path.append(str(built))  # mypyc's runtime library, a top-level module
    return True


#: True when the core's hot modules run compiled (a fresh build is first on the path).
COMPILED = _use(fresh_build(HERE))
