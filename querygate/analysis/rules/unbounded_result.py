"""``unbounded-result``: the statement returns a large result (no LIMIT, no aggregation, no
selective filter: estimated rows at least the policy's ``large_result_rows``). Warn."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.estimate import estimate_rows
from querygate.analysis.findings import Finding, Severity, gettext_noop, template
from querygate.analysis.query_shape import has_limit, is_aggregate

UNBOUNDED_RESULT = template(
    "unbounded-result",
    gettext_noop(
        "This query returns about %(rows)s rows: no LIMIT, no aggregation and no selective "
        "filter on a large table."
    ),
    gettext_noop(
        "Add LIMIT %(limit)s at the end, aggregate (GROUP BY), or filter on a selective column."
    ),
)


def unbounded_result(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """A finding at the statement's start when the result is estimated unbounded."""
    if not isinstance(tree, exp.Query) or has_limit(tree):
        return []
    if isinstance(tree, exp.Select) and is_aggregate(tree, context):
        return []
    rows, _ = estimate_rows(context)
    if rows < context.policy.large_result_rows:
        return []
    limit = context.policy.suggested_limit
    return [
        context.finding(
            "unbounded-result",
            Severity.WARN,
            UNBOUNDED_RESULT(rows=f"{rows:,}", limit=limit),
            at=context.statement_start(),
        )
    ]
