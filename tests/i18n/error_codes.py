"""Every API error ``code`` the portal's code can produce, found by reading its source.

An AST scan (no hand list, so a new code is found the day it is written) of the apps that
serve the API for:

- class attributes ``code = "..."`` and ``default_code = "..."`` (KarimasuError subclasses,
  DRF exceptions),
- keyword arguments ``code="..."`` of any call (``Conflict(..., code="not_now")``,
  ``error_response(409, code="busy")``),
- the values of ``portal.api.exceptions.DEFAULT_CODES`` (the code of a bare HTTP status).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("portal", "scheduler", "querygate", "pipelines")


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def scan() -> dict[str, set[str]]:
    """code -> the files (relative paths) that produce it."""
    found: dict[str, set[str]] = {}

    def add(code: str | None, path: Path) -> None:
        if code and code.isidentifier():
            found.setdefault(code, set()).add(str(path.relative_to(ROOT)))

    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.Assign) and len(item.targets) == 1:
                            target = item.targets[0]
                            if isinstance(target, ast.Name) and target.id in {
                                "code",
                                "default_code",
                            }:
                                add(_literal(item.value), path)
                elif isinstance(node, ast.Call):
                    for keyword in node.keywords:
                        if keyword.arg == "code":
                            add(_literal(keyword.value), path)
                elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "DEFAULT_CODES" for t in node.targets
                ):
                    if isinstance(node.value, ast.Dict):
                        for value in node.value.values:
                            add(_literal(value), path)
    return found
