"""``unbounded-recursive-cte``: a recursive CTE with a recursive member (any of them, when
its UNION has several) that has no WHERE (no termination predicate) while no LIMIT stops
reading it (a LIMIT on a query that reads the CTE directly, without aggregating, sorting or
DISTINCT: ``SELECT count(*) FROM r LIMIT 10`` still reads every row): it may never stop.
Error."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.builders import recursive_parts
from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template
from querygate.analysis.query_shape import limit_stops_reading

UNBOUNDED_RECURSIVE_CTE = template(
    "unbounded-recursive-cte",
    gettext_noop(
        "The recursive CTE %(name)s has no termination predicate in its recursive member and "
        "the query has no LIMIT: it may recurse forever."
    ),
    gettext_noop(
        "Add a termination predicate to the recursive member, e.g. WHERE %(name)s.%(column)s "
        "< 100, or a LIMIT on the query."
    ),
)


def recursive_cte(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per recursive CTE without a termination predicate or outer LIMIT."""
    findings: list[Finding] = []
    parsed = context.parsed
    for with_ in context.parsed_nodes(exp.With):
        if not with_.args.get("recursive"):
            continue
        for cte in with_.expressions:
            parts = recursive_parts(cte)
            name = cte.alias_or_name.lower()
            if parts is None or limit_stops_reading(parsed, name, context):
                continue
            anchors, members = parts
            if all(member.args.get("where") is not None for member in members):
                continue  # every recursive member has a termination predicate
            anchor = anchors[0]
            projections = anchor.expressions if isinstance(anchor, exp.Select) else []
            first = projections[0].alias_or_name if projections else ""
            first = first or "depth"
            findings.append(
                context.finding(
                    "unbounded-recursive-cte",
                    Severity.ERROR,
                    UNBOUNDED_RECURSIVE_CTE(name=cte.alias_or_name, column=first),
                    at=cte.args.get("alias") or cte,
                )
            )
    return findings
