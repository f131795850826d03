"""``unbounded-recursive-cte``: a recursive CTE whose recursive member has no WHERE (no
termination predicate) while the statement has no LIMIT: it may never stop. Error."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity
from querygate.analysis.query_shape import has_limit


def recursive_cte(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per recursive CTE without a termination predicate or outer LIMIT."""
    findings: list[Finding] = []
    parsed = context.parsed
    for with_ in context.parsed_nodes(exp.With):
        if not with_.args.get("recursive"):
            continue
        for cte in with_.expressions:
            body = cte.this
            name = cte.alias_or_name.lower()
            if not isinstance(body, exp.Union):
                continue
            member = body.right
            refers = any(t.name.lower() == name for t in member.find_all(exp.Table))
            if not refers or member.args.get("where") is not None or has_limit(parsed):
                continue
            anchor = body.this
            first = anchor.expressions[0].alias_or_name if anchor.expressions else ""
            first = first or "depth"
            findings.append(
                context.finding(
                    "unbounded-recursive-cte",
                    Severity.ERROR,
                    f"The recursive CTE {cte.alias_or_name} has no termination predicate in "
                    "its recursive member and the query has no LIMIT: it may recurse forever.",
                    at=cte.args.get("alias") or cte,
                    suggestion=f"Add a termination predicate to the recursive member, e.g. "
                    f"WHERE {cte.alias_or_name}.{first} < 100, or a LIMIT on the query.",
                )
            )
    return findings
