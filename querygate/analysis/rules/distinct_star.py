"""``distinct-star``: ``SELECT DISTINCT *`` compares whole rows, usually to hide a join that
duplicates rows. Warn."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

DISTINCT_STAR = template(
    "distinct-star",
    gettext_noop(
        "SELECT DISTINCT * de-duplicates whole rows: it sorts or hashes every column, and "
        "often hides a join that duplicates rows."
    ),
    gettext_noop(
        "Select DISTINCT only the key columns you need, or fix the join that produces "
        "duplicates (GROUP BY the key)."
    ),
)


def distinct_star(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per ``SELECT DISTINCT *``."""
    findings: list[Finding] = []
    if not context.has_parsed_node((exp.Star,)):
        return findings  # no star anywhere (``t.*`` holds one too)
    for select in context.parsed_nodes(exp.Select):
        if not select.args.get("distinct"):
            continue
        for projection in select.expressions:
            is_star = isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            )
            if is_star:
                findings.append(
                    context.finding(
                        "distinct-star",
                        Severity.WARN,
                        DISTINCT_STAR(),
                        at=projection,
                    )
                )
    return findings
