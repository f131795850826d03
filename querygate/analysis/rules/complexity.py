"""``excessive-complexity``: more joins, deeper subqueries, more CTEs or more syntax nodes
than the policy allows (``max_joins``, ``max_subquery_depth``, ``max_ctes``,
``max_nodes``). Warn."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

EXCESSIVE_COMPLEXITY = template(
    "excessive-complexity",
    gettext_noop("This query is more complex than the warehouse's policy allows: %(detail)s."),
    gettext_noop(
        "Split it into steps: materialize intermediate results as CTEs or tables, and drop "
        "joins and subqueries the result does not need."
    ),
)


def query_depth(tree: exp.Expr, selects: list[exp.Select] | None = None) -> int:
    """The deepest nesting of SELECTs (a flat query is 1).

    >>> import sqlglot
    >>> query_depth(sqlglot.parse_one("SELECT * FROM (SELECT * FROM (SELECT 1) a) b"))
    3

    ``selects``: the SELECTs of ``tree``, when the caller already has them.
    """
    deepest = 0
    for select in tree.find_all(exp.Select) if selects is None else selects:
        depth, node = 1, select.parent
        while node is not None:
            depth += isinstance(node, exp.Select)
            node = node.parent
        deepest = max(deepest, depth)
    return deepest


def complexity(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding listing every complexity limit the statement passes."""
    parsed = context.parsed
    policy = context.policy
    measured = {
        "joins": (len(context.parsed_nodes(exp.Join)), policy.max_joins),
        "subquery depth": (
            query_depth(parsed, context.parsed_nodes(exp.Select)),
            policy.max_subquery_depth,
        ),
        "CTEs": (len(context.parsed_nodes(exp.CTE)), policy.max_ctes),
        "syntax nodes": (context.parsed_node_count, policy.max_nodes),
    }
    over = {name: pair for name, pair in measured.items() if pair[0] > pair[1]}
    if not over:
        return []
    detail = ", ".join(f"{name} {value} > {limit}" for name, (value, limit) in over.items())
    return [
        context.finding(
            "excessive-complexity",
            Severity.WARN,
            EXCESSIVE_COMPLEXITY(detail=detail),
            at=context.statement_start(),
        )
    ]
