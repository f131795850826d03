"""Questions rules ask about a query's shape: is it limited, aggregated, reading large tables."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.catalog import TableStats
from querygate.analysis.context import RuleContext


def has_limit(query: exp.Expr) -> bool:
    """True when the query has LIMIT or FETCH FIRST."""
    return query.args.get("limit") is not None or query.args.get("fetch") is not None


def limit_stops_reading(query: exp.Expr, name: str, context: RuleContext) -> bool:
    """True when ``query``'s LIMIT stops it reading the CTE ``name`` early: a SELECT with
    LIMIT that reads the CTE directly in its FROM or joins and neither aggregates, sorts,
    removes duplicates nor computes windows (each of those reads every row first, so a
    recursion under them never stops)."""
    if not isinstance(query, exp.Select) or not has_limit(query):
        return False
    if query.args.get("order") or query.args.get("distinct") or query.args.get("group"):
        return False
    if is_aggregate(query, context) or any(p.find(exp.Window) for p in query.expressions):
        return False
    sources = [query.args.get("from_"), *(query.args.get("joins") or [])]
    return any(
        isinstance(s.this, exp.Table) and s.this.name.lower() == name and not s.this.db
        for s in sources
        if s is not None
    )


def is_aggregate(select: exp.Expr, context: RuleContext) -> bool:
    """True for GROUP BY, or an aggregate outside any window in the projection (of this
    SELECT, not of a subquery in it)."""
    if select.args.get("group") is not None:
        return True
    return id(select) in _aggregating_selects(context)


def _aggregating_selects(context: RuleContext) -> set[int]:
    """Ids of the SELECTs with an aggregate outside any window in their projection: each
    aggregate of the statement walks up to its SELECT once (computed once per analysis,
    cheaper than walking every projection; qualification keeps the aggregates and only
    wraps projections in aliases, so the answer holds before and after it)."""
    cached = context.derived.get("aggregating_selects")
    if isinstance(cached, set):
        return cached
    found: set[int] = set()
    for agg in context.parsed_nodes(exp.AggFunc):
        child: exp.Expr = agg
        node = agg.parent
        while node is not None and not isinstance(node, (exp.Window, exp.Select)):
            child, node = node, node.parent
        if isinstance(node, exp.Select) and child.arg_key == "expressions":
            found.add(id(node))
    context.derived["aggregating_selects"] = found
    return found


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
    """CTE name -> body (computed once per analysis; qualification keeps the CTE nodes, so
    the mapping holds before and after it; callers must not change the mapping)."""
    cached = context.derived.get("cte_bodies")
    if isinstance(cached, dict):
        return cached
    ctes = {cte.alias_or_name.lower(): cte.this for cte in context.parsed_nodes(exp.CTE)}
    context.derived["cte_bodies"] = ctes
    return ctes


def reads_large_table(node: exp.Expr, context: RuleContext) -> bool:
    """True when any table read under ``node`` is large by the policy."""
    return any(context.is_large(stats) for stats in base_tables(node, context))
