"""``leading-wildcard-like``: ``LIKE '%...'`` / ``ILIKE '%...'`` on a column of a large table
cannot use an index or zone map and reads every value. Warn."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

LEADING_WILDCARD_LIKE = template(
    "leading-wildcard-like",
    gettext_noop(
        "%(column)s LIKE '%(pattern)s' starts with a wildcard: every value of %(table)s "
        "(%(rows)s rows) is read and matched."
    ),
    gettext_noop(
        "Anchor the pattern (%(column)s LIKE '%(anchored)s'), or first filter on a selective "
        "column so fewer rows are matched."
    ),
)


def leading_wildcard_like(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per leading-wildcard pattern on a column of a large table."""
    findings: list[Finding] = []
    if not context.has_parsed_node((exp.Like, exp.ILike)):
        return findings  # qualify makes no LIKE: none in the parsed tree means none at all
    for scope in context.scopes:
        for like in scope.find_all(exp.Like, exp.ILike):
            pattern = like.expression
            column = like.this.unnest()
            if not (isinstance(pattern, exp.Literal) and pattern.is_string):
                continue
            if not pattern.name.startswith(("%", "_")) or not isinstance(column, exp.Column):
                continue
            table = context.base_table(column, scope)
            stats = context.table_stats(table) if table is not None else None
            if stats is None or not context.is_large(stats):
                continue
            anchored = pattern.name.lstrip("%_") or "prefix"
            findings.append(
                context.finding(
                    "leading-wildcard-like",
                    Severity.WARN,
                    LEADING_WILDCARD_LIKE(
                        column=column.name,
                        pattern=pattern.name,
                        table=stats.name,
                        rows=f"{stats.rows or 0:,}",
                        anchored=anchored,
                    ),
                    at=column,
                )
            )
    return findings
