"""Every API error ``code`` the portal's code can produce, found by reading its source.

An AST scan (no hand list, so a new code is found the day it is written) of the apps that
serve the API for:

- class attributes ``code = "..."`` and ``default_code = "..."`` (KarimasuError subclasses,
  DRF exceptions),
- keyword arguments ``code="..."`` of any call (``Conflict(..., code="not_now")``,
  ``error_response(409, code="busy")``), and a code given after an HTTP status
  (the session proxy's ``Denied(403, "bad_origin", "...")``),
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


def _codes_in(tree: ast.AST) -> list[str | None]:
    found: list[str | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            found += [
                _literal(item.value)
                for item in node.body
                if isinstance(item, ast.Assign)
                and len(item.targets) == 1
                and isinstance(item.targets[0], ast.Name)
                and item.targets[0].id in {"code", "default_code"}
            ]
        elif isinstance(node, ast.Call):
            found += [_literal(k.value) for k in node.keywords if k.arg == "code"]
            # (status, "code", message): the session proxy's ``Denied(403, "bad_origin", ...)``
            if (
                len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, int)
                and 400 <= node.args[0].value < 600
            ):
                found.append(_literal(node.args[1]))
        elif (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "DEFAULT_CODES" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            found += [_literal(value) for value in node.value.values]
    return found


def scan() -> dict[str, set[str]]:
    """code -> the files (relative paths) that produce it."""
    found: dict[str, set[str]] = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for code in _codes_in(tree):
                if code and code.isidentifier():
                    found.setdefault(code, set()).add(str(path.relative_to(ROOT)))
    return found
