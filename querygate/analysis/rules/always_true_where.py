"""``always-true-where``: a WHERE that filters nothing (``WHERE 1 = 1`` alone, ``... OR 1 = 1``)
or compares a column with itself (``x = x``). Warn. ``WHERE 1 = 1 AND real_filter`` (the
query-builder idiom) is fine."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity
from querygate.analysis.predicates import conjuncts, disjuncts, is_always_true


def always_true_where(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per always-true WHERE, or per self-comparison inside a WHERE."""
    findings: list[Finding] = []
    for where in context.parsed_nodes(exp.Where):
        condition = where.this
        if is_always_true(condition):
            culprit = next((d for d in disjuncts(condition) if is_always_true(d)), condition)
            findings.append(
                context.finding(
                    "always-true-where",
                    Severity.WARN,
                    f"The WHERE condition is always true because of {context.sql_of(culprit)}: "
                    "it filters nothing.",
                    at=culprit,
                    suggestion=f"Remove {context.sql_of(culprit)} and state the filter you "
                    "meant, e.g. a date range or an id.",
                )
            )
            continue
        for part in conjuncts(condition):
            is_self = isinstance(part, exp.EQ) and isinstance(part.left.unnest(), exp.Column)
            if is_self and isinstance(part, exp.EQ) and is_always_true(part):
                findings.append(_self_comparison(part, context))
    return findings


def _self_comparison(part: exp.EQ, context: RuleContext) -> Finding:
    column = context.sql_of(part.left)
    return context.finding(
        "always-true-where",
        Severity.WARN,
        f"{context.sql_of(part)} compares a column with itself: it is true for every row "
        "where the column is not NULL.",
        at=part,
        suggestion=f"Compare {column} with the column or value you meant, e.g. "
        f"{column} = <other table>.{part.left.unnest().name}.",
    )
