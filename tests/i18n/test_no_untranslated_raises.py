"""No untranslated refusal can be added (issue 18 item 1), in any package that answers
users: an AST scan of every module of scheduler/, querygate/, pipelines/ and portal/.

A ``raise`` of a Karimasu error, of one of DRF's API exceptions, or of Django's ``Http404``,
``PermissionDenied`` or ``ValidationError``, whose message is a literal (a string, an
f-string, a ``%`` or ``.format`` of a literal, a concatenation, or a local variable assigned
one) must instead pass it through ``gettext`` (``_``/``gettext``/``gettext_lazy``/
``ngettext``), alone or ``%``-filled, or be a ``phrase(...)`` (stored and rendered later,
``portal.phrases``). Text sentences in its ``details`` (a literal starting with a capital and
ending with a full stop) likewise, and the text arguments of a helper that makes the error
(``fail("field", message)``). So a Japanese reader never meets a new English refusal,
whoever writes it. (Two scans, one per half of the code, were folded into this one: each
had missed what the other caught.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from rest_framework.exceptions import APIException

from portal.errors import KarimasuError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("scheduler", "querygate", "pipelines", "portal")
TRANSLATORS = {"_", "gettext", "gettext_lazy", "ngettext", "pgettext", "npgettext", "phrase"}


def _error_classes(trees: list[ast.Module]) -> set[str]:
    """Every subclass of KarimasuError and of DRF's APIException, by name: DRF's as loaded,
    the project's from the class statements (a subclass of a subclass counts too)."""
    names = {KarimasuError.__name__, "Http404", "PermissionDenied", "ValidationError"}
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
            if cls.name not in names and any(_callee(b) in names for b in cls.bases):
                names.add(cls.name)
                grew = True
    return names


def _callee(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _translated(node: ast.expr) -> bool:
    """A gettext call, or a ``%``/``.format`` filling of one."""
    if isinstance(node, ast.Call):
        if _callee(node.func) in TRANSLATORS:
            return True
        if isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            return _translated(node.func.value)
        return False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _translated(node.left)
    return False


def _literal(node: ast.expr) -> bool:
    """English text written in the code: a string, an f-string, or built from one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and any(c.isalpha() for c in node.value)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return not _translated(node) and (_literal(node.left) or _literal(node.right))
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            return _literal(node.func.value)
        return False
    if isinstance(node, ast.IfExp):
        return _literal(node.body) or _literal(node.orelse)
    return False


def _word(node: ast.expr) -> bool:
    """A field name or code (``"image"``), not text."""
    return isinstance(node, ast.Constant) and str(node.value).replace("_", "").isalnum()


def _sentence(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value[:1].isupper()
        and node.value.endswith(".")
    )


def _detail_sentences(node: ast.expr) -> Iterator[ast.expr]:
    """Literal sentences inside a ``details`` value (dicts and lists, any depth)."""
    if _sentence(node):
        yield node
    elif isinstance(node, ast.Dict):
        for value in node.values:
            yield from _detail_sentences(value)
    elif isinstance(node, ast.List | ast.Tuple):
        for item in node.elts:
            yield from _detail_sentences(item)


class _Scan(ast.NodeVisitor):
    def __init__(self, path: Path, errors: set[str]) -> None:
        self.path, self.errors = path, errors
        self.found: list[str] = []
        self.scopes: list[dict[str, list[ast.expr]]] = [{}]

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        assigned: dict[str, list[ast.expr]] = {}
        for inner in ast.walk(node):
            if isinstance(inner, ast.Assign):
                for target in inner.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(inner.value)
        self.scopes.append(assigned)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _report(self, node: ast.AST, what: str) -> None:
        where = f"{self.path}:{getattr(node, 'lineno', '?')}"
        self.found.append(f"{where}: {what}")

    def _untranslated(self, message: ast.expr) -> bool:
        if _literal(message):
            return True
        if isinstance(message, ast.Name):
            return any(_literal(v) for v in self.scopes[-1].get(message.id, []))
        return False

    def visit_Raise(self, node: ast.Raise) -> None:
        call = node.exc
        if isinstance(call, ast.Call) and _callee(call.func) in self.errors:
            message = call.args[0] if call.args else None
            for keyword in call.keywords:
                if keyword.arg in ("message", "detail"):
                    message = keyword.value
            if message is not None and self._untranslated(message):
                self._report(node, f"untranslated message {ast.unparse(message)[:80]}")
            details = [k.value for k in call.keywords if k.arg == "details"]
            if isinstance(message, ast.Dict | ast.List):  # ValidationError({field: [...]})
                details.append(message)
            for value in details:
                for sentence in _detail_sentences(value):
                    self._report(sentence, f"untranslated detail {ast.unparse(sentence)[:80]}")
        elif isinstance(call, ast.Call) and not _callee(call.func)[:1].isupper():
            # A helper that makes the error (``fail("field", message)``): its text arguments.
            for arg in call.args:
                if self._untranslated(arg) and not _word(arg):
                    self._report(node, f"untranslated message {ast.unparse(arg)[:80]}")
        self.generic_visit(node)


def scan(source: str, path: Path, errors: set[str]) -> list[str]:
    visitor = _Scan(path, errors)
    visitor.visit(ast.parse(source))
    return visitor.found


def _sources() -> dict[Path, str]:
    return {
        path.relative_to(ROOT): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def test_the_scan_catches_each_way_of_writing_english() -> None:
    errors = {"Conflict", "NotPermitted", "ValidationError"}
    path = Path("example.py")
    bad = [
        'raise Conflict("Busy.")',
        'raise Conflict(f"Job {pk} is busy.")',
        'raise Conflict("Job %s is busy." % pk)',
        'raise Conflict("Run %(n)s ended." % {"n": n})',
        'raise Conflict("Job {} is busy.".format(pk))',
        'raise Conflict("Job " + str(pk))',
        'raise Conflict("Run " + str(n) + " ended.")',
        'raise Conflict("a" if x else _("b"))',
        'raise errors.Conflict(message="Taken.")',
        'def f():\n    text = f"Job {pk}."\n    raise Conflict(text)',
        'raise Conflict(_("Busy."), details={"gpus": ["Empty."]})',
        'raise ValidationError({"end": ["Must be after start."]})',
        'raise fail("image", f"{image!r} is bad.")',
        'raise _fail("gpus", "Too many GPUs.")',
    ]
    for source in bad:
        assert scan(source, path, errors), source
    good = [
        'raise Conflict(_("Busy."))',
        'raise Conflict(gettext("Job %(pk)s.") % {"pk": pk})',
        'raise NotPermitted(_("No team %(slug)s.") % {"slug": slug})',
        'raise Conflict(_("Job {pk}.").format(pk=pk))',
        'def f():\n    text = _("Job %(pk)s.") % {"pk": pk}\n    raise Conflict(text)',
        'raise Conflict(_("Busy."), details={"rule": "max_days_ahead", "gpus": [1]})',
        'raise Conflict(phrase(gettext_noop("Cancelled.")))',
        "raise Conflict(message)",
        'raise KeyError("not a refusal")',
        "raise Conflict(str(exc))",
        'raise fail("image", _("%(image)s is bad.") % {"image": image})',
    ]
    for source in good:
        assert not scan(source, path, errors), source


def test_no_refusal_is_untranslated_english() -> None:
    sources = _sources()
    errors = _error_classes([ast.parse(text) for text in sources.values()])
    assert {"NotPermitted", "SqlError", "Refused", "MalformedJSON", "PayloadTooLarge"} <= errors
    assert {"InvalidTransition", "AuthenticationFailed", "Http404"} <= errors
    assert "DefinitionError" not in errors  # a ValueError: its template is rendered later
    found: list[str] = []
    for path, text in sources.items():
        found += scan(text, path, errors)
    assert not found, "Wrap these in gettext (named placeholders):\n" + "\n".join(found)
