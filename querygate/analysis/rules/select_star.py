"""``select-star``: ``SELECT *`` (or ``t.*``) over a wide or large table. Warn, and suggest
the explicit column list that replaces the star."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.catalog import TableStats
from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

SELECT_STAR = template(
    "select-star",
    gettext_noop(
        "SELECT * reads every column of %(tables)s; a columnar warehouse scans only the "
        "columns you name."
    ),
    gettext_noop("Name the columns you need instead of *: %(columns)s"),
)


def select_star(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per star projection over a wide or large base table."""
    findings: list[Finding] = []
    if not context.has_parsed_node((exp.Star,)):
        return findings  # no star anywhere (``t.*`` holds one too)
    for select in context.parsed_nodes(exp.Select):
        if select.find_ancestor(exp.Exists) is not None:
            continue
        sources = _sources(select, context)
        for projection in select.expressions:
            tables = _star_tables(projection, sources)
            if tables is None:
                continue
            flagged = [
                (alias, stats)
                for alias, stats in tables
                if len(stats.columns) >= context.policy.wide_table_columns
                or context.is_large(stats)
            ]
            if flagged:
                findings.append(_finding(projection, tables, len(sources) > 1, context))
    return findings


def _sources(select: exp.Select, context: RuleContext) -> list[tuple[str, TableStats]]:
    tables = []
    from_ = select.args.get("from_")
    nodes = [from_.this] if from_ is not None else []
    nodes += [join.this for join in select.args.get("joins") or []]
    for node in nodes:
        if isinstance(node, exp.Table) and node.name.lower() not in context.cte_names:
            stats = context.table_stats(node)
            if stats is not None:
                tables.append((node.alias_or_name, stats))
    return tables


def _star_tables(
    projection: exp.Expr, sources: list[tuple[str, TableStats]]
) -> list[tuple[str, TableStats]] | None:
    if isinstance(projection, exp.Star):
        return sources
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
        return [s for s in sources if s[0].lower() == projection.table.lower()]
    return None


def _finding(
    star: exp.Expr,
    tables: list[tuple[str, TableStats]],
    qualify_names: bool,
    context: RuleContext,
) -> Finding:
    names = [
        f"{alias}.{column.name}" if qualify_names else column.name
        for alias, stats in tables
        for column in stats.columns
    ]
    described = ", ".join(
        f"{stats.name} ({len(stats.columns)} columns, {stats.rows or 0:,} rows)"
        for _, stats in tables
    )  # the table list stays English: names and numbers with unit words
    return context.finding(
        "select-star",
        Severity.WARN,
        SELECT_STAR(tables=described, columns=", ".join(names)),
        at=star,
    )
