"""``order-by-random``: ``ORDER BY random()`` sorts the whole input to sample it. Warn, and
suggest the engine's sampling clause."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity

_SAMPLE = {
    "duckdb": "FROM <table> USING SAMPLE 1000 ROWS",
    "postgres": "FROM <table> TABLESAMPLE SYSTEM (1)",
}


def order_by_random(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per ORDER BY key that is a random function."""
    findings: list[Finding] = []
    if not context.has_parsed_node((exp.Rand,)):
        return findings  # no random() anywhere: no ORDER BY to look into
    sample = _SAMPLE.get(context.dialect, _SAMPLE["duckdb"])
    for order in context.parsed_nodes(exp.Order):
        if isinstance(order.parent, exp.Window):
            continue
        for key in order.expressions:
            random = key.find(exp.Rand)
            if random is None:
                continue
            findings.append(
                context.finding(
                    "order-by-random",
                    Severity.WARN,
                    "ORDER BY random() sorts every row just to pick a random few.",
                    at=random,
                    suggestion=f"Sample instead: {sample}.",
                )
            )
    return findings
