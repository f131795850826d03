"""``always-true-join``: a join condition that holds for every pair of rows (``ON TRUE``,
``ON 1 = 1``, ``ON a.x = a.x``): a cartesian product in disguise. Warn; error when both
sides are large tables."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template
from querygate.analysis.predicates import is_always_true
from querygate.analysis.query_shape import reads_large_table

ALWAYS_TRUE_JOIN = template(
    "always-true-join",
    gettext_noop(
        "The join condition ON %(condition)s is always true: this join pairs every row with "
        "every row."
    ),
    gettext_noop(
        "Join on the key that relates the tables, e.g. ON <left>.<key> = %(right)s.<key>."
    ),
)


def always_true_join(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per join whose ON condition is always true."""
    findings: list[Finding] = []
    for join in context.parsed_nodes(exp.Join):
        on = join.args.get("on")
        if on is None or not is_always_true(on):
            continue
        select = join.parent
        both_large = (
            select is not None
            and reads_large_table(join.this, context)
            and (select.args.get("from_") is not None)
            and reads_large_table(select.args["from_"], context)
        )
        findings.append(
            context.finding(
                "always-true-join",
                Severity.ERROR if both_large else Severity.WARN,
                ALWAYS_TRUE_JOIN(condition=context.sql_of(on), right=join.this.alias_or_name),
                at=context.token_after(join.this, TokenType.ON),
            )
        )
    return findings
