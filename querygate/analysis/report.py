"""The analysis report and the decision it suggests."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import sqlglot

from querygate.analysis.classify import StatementKind
from querygate.analysis.estimate import Estimate
from querygate.analysis.findings import Finding, Severity
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
    when the SQL did not parse), made on first use: the gate decides without it, and the
    analysis rewrote its own tree in place (qualification), so it is parsed again.
    """

    statement_kind: StatementKind | None
    decision: Decision
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...]
    estimate: Estimate | None
    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    error: AnalysisFailure | None = None
    #: The SQL analyzed; empty when it did not parse into one statement.
    sql: str = field(default="", repr=False, compare=False)
    dialect: str = ""

    @cached_property
    def normalized_sql(self) -> str:
        """The statement as sqlglot's pretty SQL in the warehouse's dialect."""
        if not self.sql:
            return ""
        tree = sqlglot.parse_one(self.sql, read=self.dialect)
        # copy=False: the tree is this property's own, and it is computed once.
        return tree.sql(dialect=self.dialect, pretty=True, copy=False)

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
            "statement_type": self.statement_kind.value if self.statement_kind else None,
            "tables": list(self.tables),
            "columns": list(self.columns),
            "estimate": estimate,
            "findings": [f.to_dict() for f in self.findings],
            "normalized_sql": self.normalized_sql,
            "error": error,
        }


def decide(
    findings: list[Finding], estimate: Estimate | None, policy: Policy
) -> tuple[Decision, tuple[str, ...]]:
    """Reject on an error finding or a passed hard limit, warn on a warning or a passed soft
    limit, else allow; the reasons say which."""
    rejects = [f"{f.rule}: {f.message}" for f in findings if f.severity is Severity.ERROR]
    warns = [f"{f.rule}: {f.message}" for f in findings if f.severity is Severity.WARN]
    if estimate is not None:
        scanned = estimate.bytes_scanned
        if scanned > policy.max_bytes_scanned:
            rejects.append(
                f"scans about {scanned / GIB:,.1f} GiB, over the limit of "
                f"{policy.max_bytes_scanned / GIB:,.1f} GiB"
            )
        elif scanned > policy.warn_bytes_scanned:
            warns.append(f"scans about {scanned / GIB:,.1f} GiB")
        if estimate.intermediate_rows > policy.max_intermediate_rows:
            rejects.append(
                f"joins produce about {estimate.intermediate_rows:,} intermediate rows, over "
                f"the limit of {policy.max_intermediate_rows:,}"
            )
        if estimate.result_bytes > policy.max_result_bytes:
            rejects.append(
                f"returns about {estimate.result_bytes / GIB:,.1f} GiB "
                f"({estimate.rows:,} rows), over the limit of "
                f"{policy.max_result_bytes / GIB:,.1f} GiB of result; add a LIMIT, "
                "aggregate, or select fewer columns"
            )
    if rejects:
        return Decision.REJECT, tuple(rejects)
    if warns:
        return Decision.WARN, tuple(warns)
    return Decision.ALLOW, ()
