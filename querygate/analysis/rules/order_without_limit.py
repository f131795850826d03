"""``order-without-limit``: ORDER BY without LIMIT over a large input (at least the policy's
``large_table_rows`` estimated rows): a full sort of the input. Warn."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from querygate.analysis.context import RuleContext
from querygate.analysis.estimate import rows_memo, scope_rows
from querygate.analysis.findings import Finding, Severity, gettext_noop, template
from querygate.analysis.query_shape import has_limit, is_aggregate

ORDER_WITHOUT_LIMIT = template(
    "order-without-limit",
    gettext_noop("ORDER BY without LIMIT sorts about %(rows)s rows."),
    gettext_noop(
        "Add LIMIT %(limit)s after the ORDER BY, or drop the ORDER BY if the order does not matter."
    ),
)


def order_without_limit(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per sorted, unlimited, non-aggregated SELECT over a large input."""
    findings: list[Finding] = []
    memo = rows_memo(context)
    for scope in context.scopes:
        select = scope.expression
        if not isinstance(select, exp.Select) or select.args.get("order") is None:
            continue
        if has_limit(select) or is_aggregate(select, context):
            continue
        order = select.args["order"]
        rows, _ = scope_rows(scope, context, memo)
        if rows < context.policy.large_table_rows:
            continue
        findings.append(
            context.finding(
                "order-without-limit",
                Severity.WARN,
                ORDER_WITHOUT_LIMIT(rows=f"{int(rows):,}", limit=context.policy.suggested_limit),
                at=context.keyword_position(order.expressions[0], {TokenType.ORDER_BY}),
            )
        )
    return findings
