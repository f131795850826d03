"""No untranslated refusal can be added to the scheduler (issue 18 item 1).

An AST scan of every module under ``scheduler/``: a ``raise`` of a Karimasu error (or a
DRF/Django ``ValidationError``) whose message is a literal (a string, an f-string, a ``%``
or ``.format`` of a literal, or a local variable assigned one) must instead pass it through
``gettext`` (``_``/``gettext``/``gettext_lazy``/``ngettext``), alone or ``%``-filled. Text
sentences in its ``details`` (a literal starting with a capital and ending with a full stop)
likewise. So a Japanese reader never meets a new English refusal, whoever writes it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import scheduler
from portal.errors import KarimasuError

ROOT = Path(scheduler.__file__).parent
TRANSLATORS = {"_", "gettext", "gettext_lazy", "ngettext", "pgettext", "npgettext"}


def _error_names() -> set[str]:
    # Importing the services and APIs registers every subclass the scheduler defines.
    import scheduler.api.urls
    import scheduler.services.booking_policy
    import scheduler.services.jobs  # noqa: F401

    names, todo = set(), [KarimasuError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names | {"ValidationError"}


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
        where = f"{self.path.relative_to(ROOT.parent)}:{getattr(node, 'lineno', '?')}"
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


def test_the_scan_catches_each_way_of_writing_english() -> None:
    errors = {"Conflict", "ValidationError"}
    path = ROOT / "example.py"
    bad = [
        'raise Conflict("Busy.")',
        'raise Conflict(f"Job {pk} is busy.")',
        'raise Conflict("Job %s is busy." % pk)',
        'raise Conflict("Job {} is busy.".format(pk))',
        'raise Conflict("Job " + str(pk))',
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
        'raise Conflict(_("Job {pk}.").format(pk=pk))',
        'def f():\n    text = _("Job %(pk)s.") % {"pk": pk}\n    raise Conflict(text)',
        'raise Conflict(_("Busy."), details={"rule": "max_days_ahead", "gpus": [1]})',
        'raise KeyError("not a refusal")',
        "raise Conflict(str(exc))",
        'raise fail("image", _("%(image)s is bad.") % {"image": image})',
    ]
    for source in good:
        assert not scan(source, path, errors), source


def test_no_scheduler_refusal_is_untranslated_english() -> None:
    errors = _error_names()
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        found += scan(path.read_text(encoding="utf-8"), path, errors)
    assert not found, "Wrap these in gettext (named placeholders):\n" + "\n".join(found)
