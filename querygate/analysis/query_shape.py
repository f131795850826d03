"""Questions rules ask about a query's shape: is it limited, aggregated, reading large tables."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.catalog import TableStats
from querygate.analysis.context import RuleContext


def has_limit(query: exp.Expr) -> bool:
    """True when the query has LIMIT or FETCH FIRST."""
    return query.args.get("limit") is not None or query.args.get("fetch") is not None


def is_aggregate(select: exp.Expr) -> bool:
    """True for GROUP BY, or an aggregate outside any window in the projection."""
    if select.args.get("group") is not None:
        return True
    for projection in select.expressions:
        for agg in projection.find_all(exp.AggFunc):
            if agg.find_ancestor(exp.Window) is None:
                return True
    return False


def base_tables(node: exp.Expr, context: RuleContext, depth: int = 0) -> list[TableStats]:
    """Catalog tables read anywhere under ``node``, looking into the CTEs it references."""
    found: list[TableStats] = []
    ctes = _cte_bodies(context)
    for table in node.find_all(exp.Table):
        stats = context.table_stats(table)
        name = table.name.lower()
        if name in ctes and not table.db and depth < 5:
            found += base_tables(ctes[name], context, depth + 1)
        elif stats is not None:
            found.append(stats)
    return found


def _cte_bodies(context: RuleContext) -> dict[str, exp.Expr]:
    """CTE name -> body, from the parsed tree and then the qualified one (computed once per
    analysis when the qualified tree is there; callers must not change the mapping)."""
    cached = context.derived.get("cte_bodies")
    if isinstance(cached, dict):
        return cached
    ctes = {cte.alias_or_name.lower(): cte.this for cte in context.parsed_nodes(exp.CTE)}
    if context.qualified is not None:
        ctes |= {c.alias_or_name.lower(): c.this for c in context.qualified.find_all(exp.CTE)}
        context.derived["cte_bodies"] = ctes
    return ctes


def reads_large_table(node: exp.Expr, context: RuleContext) -> bool:
    """True when any table read under ``node`` is large by the policy."""
    return any(context.is_large(stats) for stats in base_tables(node, context))
