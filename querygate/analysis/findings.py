"""Findings and where they point in the SQL text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from sqlglot import exp


class Severity(StrEnum):
    """How bad a finding is: ``error`` rejects, ``warn`` runs with the finding shown."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"


def gettext_noop(text: str) -> str:
    """Marks an English template for ``makemessages`` (this layer has no Django): the
    portal translates it when it renders a finding (``querygate.messages``)."""
    return text


@dataclass(frozen=True)
class Template:
    """A message ``code`` and its English ``message`` and ``suggestion`` templates
    (``%(name)s`` placeholders filled from a finding's ``params``)."""

    code: str
    message: str
    suggestion: str = ""
    #: Parameters whose values are themselves English texts marked for translation (a fixed
    #: set of phrases, such as why a statement keyword is refused): rendered translated too.
    translated: tuple[str, ...] = ()

    def __call__(self, **params: Any) -> Text:
        """The texts with ``params`` filled in (a parameter may be a ``Text`` itself: a
        phrase such as "about 1,000" rendered in the reader's language too)."""
        return Text(
            self,
            {k: v if isinstance(v, int | float | Text) else str(v) for k, v in params.items()},
        )


@dataclass(frozen=True)
class Text:
    """A template with its parameters: what a finding or a reason stores (code, params)
    next to the English it renders to."""

    template: Template
    params: dict[str, Any]

    @property
    def code(self) -> str:
        return self.template.code

    def _english(self) -> dict[str, Any]:
        return {k: v.message if isinstance(v, Text) else v for k, v in self.params.items()}

    @property
    def message(self) -> str:
        return self.template.message % self._english()

    @property
    def suggestion(self) -> str:
        if not self.template.suggestion:
            return ""
        return self.template.suggestion % self._english()

    def json_params(self) -> dict[str, Any]:
        """The params as stored: a nested ``Text`` as ``{"code": ..., "params": ...}``."""
        return {
            k: {"code": v.code, "params": v.json_params()} if isinstance(v, Text) else v
            for k, v in self.params.items()
        }


#: Every template by code: the portal renders a stored (code, params) in the reader's
#: language from it (a code missing here renders as the stored English).
TEMPLATES: dict[str, Template] = {}


def template(
    code: str, message: str, suggestion: str = "", *, translated: tuple[str, ...] = ()
) -> Template:
    """Declare the templates of message ``code`` (once, in the rule that uses them); wrap
    both strings in ``gettext_noop`` so ``makemessages`` extracts them."""
    declared = Template(code, message, suggestion, translated)
    if code in TEMPLATES and TEMPLATES[code] != declared:
        raise ValueError(f"message code {code} declared twice")
    TEMPLATES[code] = declared
    return declared


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: ``rule`` id, severity, message, 1-based line and column of
    the start of the offending SQL (0, 0 when unknown) and a concrete suggestion; ``code``
    and ``params`` name the template (``TEMPLATES``) the English message and suggestion were
    made from, so a reader sees them in their own language ("" and {} when there is none)."""

    rule: str
    severity: Severity
    message: str
    line: int = 0
    column: int = 0
    suggestion: str = ""
    code: str = ""
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(
        cls, rule: str, severity: Severity, text: Text, line: int = 0, column: int = 0
    ) -> Finding:
        """A finding whose message and suggestion are ``text``."""
        return cls(
            rule,
            severity,
            text.message,
            line,
            column,
            text.suggestion,
            text.code,
            text.json_params(),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def start_offset(node: exp.Expr) -> int | None:
    """The smallest source offset any token of ``node`` carries, or None.

    sqlglot records ``start`` in ``meta`` of identifiers, literals and some other leaves;
    nodes built by the optimizer carry none.
    """
    best: int | None = None
    for sub in node.walk():
        start = sub.meta.get("start") if sub._meta else None
        if isinstance(start, int) and (best is None or start < best):
            best = start
    return best


def line_column(sql: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of character ``offset`` in ``sql``.

    >>> line_column("SELECT a\\nFROM t", 9)
    (2, 1)
    """
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, column
