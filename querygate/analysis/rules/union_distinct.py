"""``union-distinct``: UNION (distinct) over a large input de-duplicates every row. Warn and
suggest UNION ALL when duplicates cannot occur or do not matter."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template
from querygate.analysis.query_shape import reads_large_table

UNION_DISTINCT = template(
    "union-distinct",
    gettext_noop(
        "UNION removes duplicates by sorting or hashing the whole result of both sides, which "
        "read a large table."
    ),
    gettext_noop("Use UNION ALL if the sides cannot overlap or duplicates do not matter."),
)


def union_distinct(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per distinct UNION with a large table on either side."""
    findings: list[Finding] = []
    for union in context.parsed_nodes(exp.Union):
        if not union.args.get("distinct") or not reads_large_table(union, context):
            continue
        findings.append(
            context.finding(
                "union-distinct",
                Severity.WARN,
                UNION_DISTINCT(),
                at=context.keyword_position(union.right, {TokenType.UNION}, stop=frozenset()),
            )
        )
    return findings
