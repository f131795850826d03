"""The class stays fixed (issue 18 item 1): no ``raise <KarimasuError subclass>(...)`` in
querygate/, pipelines/ or portal/ whose message is an English literal (a string, an f-string
or a concatenation) that never passes through ``gettext``. A message is translated when it
is ``_(...)``/``gettext``/``gettext_lazy`` (with ``% {...}``), a ``phrase(...)`` (stored and
rendered later, portal.phrases) or a name holding one; DRF's own exceptions count too."""

from __future__ import annotations

import ast
from pathlib import Path

from rest_framework.exceptions import APIException

from portal.errors import KarimasuError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("querygate", "pipelines", "portal")
TRANSLATING = {"_", "gettext", "gettext_lazy", "ngettext", "pgettext", "phrase", "str"}


def _error_classes(trees: list[ast.Module]) -> set[str]:
    """Every subclass of KarimasuError and of DRF's APIException, by name: DRF's as loaded,
    the project's from the class statements (a subclass of a subclass counts too)."""
    names = {KarimasuError.__name__, "Http404", "PermissionDenied"}  # the API shows theirs
    todo: list[type] = [APIException]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    classes = [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    grew = True
    while grew:
        grew = False
        for cls in classes:
            if cls.name not in names and any(_name(b) in names for b in cls.bases):
                names.add(cls.name)
                grew = True
    return names


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _untranslated(node: ast.expr) -> bool:
    """True for a literal message (or one built from literals) that skips gettext."""
    if isinstance(node, ast.Constant | ast.JoinedStr):
        return isinstance(node, ast.JoinedStr) or isinstance(node.value, str)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mod):  # "..." % {...} or _("...") % {...}
            return _untranslated(node.left)
        return _untranslated(node.left) or _untranslated(node.right)
    if isinstance(node, ast.IfExp):
        return _untranslated(node.body) or _untranslated(node.orelse)
    if isinstance(node, ast.Call) and _name(node.func) not in TRANSLATING:
        return any(_untranslated(a) for a in node.args) if _name(node.func) == "format" else False
    if isinstance(node, ast.Call) and _name(node.func) == "str" and node.args:
        return _untranslated(node.args[0])
    return False


def _offenders(source: str, path: str, classes: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Raise) or not isinstance(node.exc, ast.Call):
            continue
        call = node.exc
        if _name(call.func) not in classes:
            continue
        message = call.args[0] if call.args else None
        for keyword in call.keywords:
            if keyword.arg in {"message", "detail"}:
                message = keyword.value
        if message is not None and _untranslated(message):
            found.append(f"{path}:{node.lineno}: {ast.unparse(call)[:100]}")
    return found


def _sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for package in (*PACKAGES, "scheduler")  # scheduler's errors are bases here too
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def test_no_service_error_raises_an_untranslated_literal() -> None:
    sources = _sources()
    classes = _error_classes([ast.parse(text) for text in sources.values()])
    assert {"NotPermitted", "SqlError", "Refused", "MalformedJSON", "PayloadTooLarge"} <= classes
    assert "DefinitionError" not in classes  # a ValueError: its template is rendered later
    found: list[str] = []
    for path, text in sources.items():
        if path.startswith(PACKAGES):
            found += _offenders(text, path, classes)
    assert not found, "untranslated error messages:\n" + "\n".join(found)


def test_the_check_catches_each_shape_of_literal() -> None:
    classes = {"NotPermitted", "Conflict"}
    bad = [
        'raise NotPermitted("Only admins.")',
        'raise NotPermitted(f"No team {slug}.")',
        'raise Conflict("Run " + str(n) + " ended.")',
        'raise Conflict("Run %(n)s ended." % {"n": n})',
        'raise errors.Conflict(message="Taken.")',
        'raise Conflict("a" if x else _("b"))',
    ]
    good = [
        'raise NotPermitted(_("Only admins."))',
        'raise NotPermitted(_("No team %(slug)s.") % {"slug": slug})',
        'raise Conflict(phrase(gettext_noop("Cancelled.")))',
        "raise Conflict(message)",
        'raise ValueError("not a service error")',
    ]
    for line in bad:
        assert _offenders(line, "x.py", classes), line
    for line in good:
        assert not _offenders(line, "x.py", classes), line
