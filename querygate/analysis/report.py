"""The analysis report and the decision it suggests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import sqlglot
from sqlglot import exp

from querygate.analysis.classify import StatementKind
from querygate.analysis.estimate import Estimate
from querygate.analysis.findings import Finding, Severity, Text, gettext_noop, template
from querygate.analysis.policy import GIB, Policy


class Decision(StrEnum):
    """What the gate suggests: run, run with the findings shown, or refuse."""

    ALLOW = "allow"
    WARN = "warn"
    REJECT = "reject"


@dataclass(frozen=True)
class AnalysisFailure:
    """Why the SQL could not be analyzed (``parse``, ``statements``, ``catalog``)."""

    kind: str
    message: str
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class Report:
    """Everything the analysis says about one SQL request.

    ``findings`` are sorted by position; ``tables`` and ``columns`` are the catalog tables
    (``schema.table``) and columns (``schema.table.column``) the statement reads;
    ``normalized_sql`` is sqlglot's pretty output of ``sql`` in ``dialect`` as written (empty
    when the SQL did not parse), made on first use: the gate decides without it. The analysis
    rewrites its own tree in place (qualification); an ``analyze(..., keep_statement=True)``
    keeps a copy of the tree as written in ``statement``, from which the portal renders the
    normalized text, the fingerprint and the statement the engine runs without parsing the
    SQL again. Without it, ``normalized_sql`` and ``fingerprint`` parse ``sql`` once more.
    """

    statement_kind: StatementKind | None
    decision: Decision
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...]
    estimate: Estimate | None
    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    error: AnalysisFailure | None = None
    #: The reasons' templates and parameters, one per reason (``Reason.to_dict``), so the
    #: portal renders them in the reader's language; empty for a report made without them.
    reason_codes: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    #: The SQL analyzed; empty when it did not parse into one statement.
    sql: str = field(default="", repr=False, compare=False)
    dialect: str = ""
    #: The statement as written (a copy made before the analysis rewrote its tree), when
    #: asked for with ``keep_statement``; treat it as read-only (render with ``copy=True``).
    statement: exp.Expr | None = field(default=None, repr=False, compare=False)

    def _as_written(self) -> exp.Expr | None:
        if not self.sql:
            return None
        if self.statement is not None:
            return self.statement
        return sqlglot.parse_one(self.sql, read=self.dialect)

    @cached_property
    def normalized_sql(self) -> str:
        """The statement as sqlglot's pretty SQL in the warehouse's dialect."""
        tree = self._as_written()
        return "" if tree is None else tree.sql(dialect=self.dialect, pretty=True)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the statement with every literal replaced by ``?``: the same shape gives
        the same print (``fingerprint_of``); empty when the SQL did not parse into one
        statement (the caller prints the text: ``text_fingerprint``)."""
        tree = self._as_written()
        return "" if tree is None else fingerprint_of(tree, self.dialect)

    def rule_ids(self) -> list[str]:
        """The findings' rule ids, in report order."""
        return [f.rule for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and ``gate analyze`` (``id`` is added by the caller)."""
        estimate = None
        if self.estimate is not None:
            estimate = {
                "rows": self.estimate.rows,
                "bytes_scanned": self.estimate.bytes_scanned,
                "intermediate_rows": self.estimate.intermediate_rows,
                "runtime_s": None,
                "source": "catalog",
                "cost_class": self.estimate.cost_class,
                "bytes_by_table": dict(self.estimate.bytes_by_table),
                "result_bytes": self.estimate.result_bytes,
                "generated_rows": self.estimate.generated_rows,
                "bytes_built": self.estimate.bytes_built,
            }
        error = None
        if self.error is not None:
            error = {
                "kind": self.error.kind,
                "message": self.error.message,
                "line": self.error.line,
                "column": self.error.column,
            }
        return {
            "decision": self.decision.value,
            "reasons": list(self.reasons),
            "reason_codes": list(self.reason_codes),
            "statement_type": self.statement_kind.value if self.statement_kind else None,
            "tables": list(self.tables),
            "columns": list(self.columns),
            "estimate": estimate,
            "findings": [f.to_dict() for f in self.findings],
            "normalized_sql": self.normalized_sql,
            "error": error,
        }


def fingerprint_of(tree: exp.Expr, dialect: str) -> str:
    """sha256 of ``tree`` rendered in ``dialect`` with its literals as ``?`` (``tree`` is
    left as it is).

    >>> a = fingerprint_of(sqlglot.parse_one("SELECT a FROM t WHERE b = 1"), "duckdb")
    >>> a == fingerprint_of(sqlglot.parse_one("select a from t where b = 42"), "duckdb")
    True
    """
    shape = tree.transform(lambda n: exp.Placeholder() if isinstance(n, exp.Literal) else n)
    return hashlib.sha256(shape.sql(dialect=dialect).encode()).hexdigest()


def text_fingerprint(sql: str) -> str:
    """sha256 of ``sql`` with its whitespace collapsed: the print of SQL that does not parse."""
    return hashlib.sha256(" ".join(sql.split()).encode()).hexdigest()


SCAN_OVER_LIMIT = template(
    "limit.bytes-scanned",
    gettext_noop("scans about %(scanned)s GiB, over the limit of %(limit)s GiB"),
)
SCAN_OVER_WARNING = template(
    "limit.bytes-scanned.warn", gettext_noop("scans about %(scanned)s GiB")
)
ROWS_OVER_LIMIT = template(
    "limit.intermediate-rows",
    gettext_noop("joins produce about %(rows)s intermediate rows, over the limit of %(limit)s"),
)
RESULT_OVER_LIMIT = template(
    "limit.result-bytes",
    gettext_noop(
        "returns about %(size)s GiB (%(rows)s rows), over the limit of %(limit)s GiB of "
        "result; add a LIMIT, aggregate, or select fewer columns"
    ),
)


@dataclass(frozen=True)
class Reason:
    """One reason of a decision: a finding's (its ``rule`` and message) or a passed limit's;
    ``code`` and ``params`` name the message's template, so it renders in any language."""

    message: str
    rule: str = ""
    code: str = ""
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of_finding(cls, finding: Finding) -> Reason:
        return cls(finding.message, finding.rule, finding.code, finding.params)

    @classmethod
    def of_text(cls, text: Text) -> Reason:
        return cls(text.message, "", text.code, text.json_params())

    def __str__(self) -> str:
        """The English reason (``rule: message`` for a finding's)."""
        return f"{self.rule}: {self.message}" if self.rule else self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``reason_codes`` of the report)."""
        return {"rule": self.rule, "code": self.code, "params": self.params}


def decide(
    findings: list[Finding], estimate: Estimate | None, policy: Policy
) -> tuple[Decision, tuple[str, ...]]:
    """Reject on an error finding or a passed hard limit, warn on a warning or a passed soft
    limit, else allow; the reasons say which (in English; ``decide_reasons`` keeps their
    templates)."""
    decision, reasons = decide_reasons(findings, estimate, policy)
    return decision, tuple(str(r) for r in reasons)


def decide_reasons(
    findings: list[Finding], estimate: Estimate | None, policy: Policy
) -> tuple[Decision, tuple[Reason, ...]]:
    """``decide`` with each reason's template and parameters."""
    rejects = [Reason.of_finding(f) for f in findings if f.severity is Severity.ERROR]
    warns = [Reason.of_finding(f) for f in findings if f.severity is Severity.WARN]
    if estimate is not None:
        scanned = estimate.bytes_scanned
        if scanned > policy.max_bytes_scanned:
            rejects.append(
                Reason.of_text(
                    SCAN_OVER_LIMIT(
                        scanned=f"{scanned / GIB:,.1f}",
                        limit=f"{policy.max_bytes_scanned / GIB:,.1f}",
                    )
                )
            )
        elif scanned > policy.warn_bytes_scanned:
            warns.append(Reason.of_text(SCAN_OVER_WARNING(scanned=f"{scanned / GIB:,.1f}")))
        if estimate.intermediate_rows > policy.max_intermediate_rows:
            rejects.append(
                Reason.of_text(
                    ROWS_OVER_LIMIT(
                        rows=f"{estimate.intermediate_rows:,}",
                        limit=f"{policy.max_intermediate_rows:,}",
                    )
                )
            )
        if estimate.result_bytes > policy.max_result_bytes:
            rejects.append(
                Reason.of_text(
                    RESULT_OVER_LIMIT(
                        size=f"{estimate.result_bytes / GIB:,.1f}",
                        rows=f"{estimate.rows:,}",
                        limit=f"{policy.max_result_bytes / GIB:,.1f}",
                    )
                )
            )
    if rejects:
        return Decision.REJECT, tuple(rejects)
    if warns:
        return Decision.WARN, tuple(warns)
    return Decision.ALLOW, ()
