"""``order-by-random``: ``ORDER BY random()`` sorts the whole input to sample it. Warn, and
suggest the engine's sampling clause."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

_SAMPLE = {
    "duckdb": "FROM <table> USING SAMPLE 1000 ROWS",
    "postgres": "FROM <table> TABLESAMPLE SYSTEM (1)",
}


ORDER_BY_RANDOM = template(
    "order-by-random",
    gettext_noop("ORDER BY random() sorts every row just to pick a random few."),
    gettext_noop("Sample instead: %(sample)s."),
)


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
                    ORDER_BY_RANDOM(sample=sample),
                    at=random,
                )
            )
    return findings
