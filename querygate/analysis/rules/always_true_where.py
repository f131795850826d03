"""``always-true-where``: a WHERE that filters nothing (``WHERE 1 = 1`` alone, ``... OR 1 = 1``)
or compares a column with itself (``x = x``). Warn. ``WHERE 1 = 1 AND real_filter`` (the
query-builder idiom) is fine."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template
from querygate.analysis.predicates import conjuncts, disjuncts, is_always_true

ALWAYS_TRUE_WHERE = template(
    "always-true-where",
    gettext_noop(
        "The WHERE condition is always true because of %(condition)s: it filters nothing."
    ),
    gettext_noop(
        "Remove %(condition)s and state the filter you meant, e.g. a date range or an id."
    ),
)
SELF_COMPARISON = template(
    "always-true-where.self",
    gettext_noop(
        "%(condition)s compares a column with itself: it is true for every row where the "
        "column is not NULL."
    ),
    gettext_noop(
        "Compare %(column)s with the column or value you meant, e.g. %(column)s = "
        "<other table>.%(name)s."
    ),
)


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
                    ALWAYS_TRUE_WHERE(condition=context.sql_of(culprit)),
                    at=culprit,
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
        SELF_COMPARISON(
            condition=context.sql_of(part), column=column, name=part.left.unnest().name
        ),
        at=part,
    )
