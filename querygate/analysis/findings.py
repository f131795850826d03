"""Findings and where they point in the SQL text."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sqlglot import exp


class Severity(StrEnum):
    """How bad a finding is: ``error`` rejects, ``warn`` runs with the finding shown."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: ``rule`` id, severity, message, 1-based line and column of
    the start of the offending SQL (0, 0 when unknown) and a concrete suggestion."""

    rule: str
    severity: Severity
    message: str
    line: int = 0
    column: int = 0
    suggestion: str = ""

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
