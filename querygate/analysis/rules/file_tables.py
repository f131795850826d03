"""``file-path-table`` (error): DuckDB reads a quoted string used as a table name
(``FROM 'data.csv'``, ``FROM 's3://bucket/x.parquet'``) as a file or URL."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity


def is_file_path_table(table: exp.Table, context: RuleContext) -> bool:
    """True for a quoted table name that is no catalog table and no CTE and looks like a
    path or URL (contains ``.``, ``/``, ``\\``, ``:``, ``*`` or ``~``)."""
    ident = table.this
    if context.dialect != "duckdb":
        return False  # elsewhere a quoted name is just an identifier
    if not isinstance(ident, exp.Identifier) or not ident.quoted or table.db:
        return False
    name = ident.name
    if name.lower() in context.cte_names or context.catalog.table(name) is not None:
        return False
    return any(ch in name for ch in "./\\:*~")


def file_tables(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """Refuse quoted file paths and URLs used as tables."""
    return [
        context.finding(
            "file-path-table",
            Severity.ERROR,
            f"'{table.name}' is read as a file or URL, which is not allowed on this warehouse.",
            at=table,
            suggestion="Query a warehouse table; ask an admin to load the file into one.",
        )
        for table in (
            context.parsed_nodes(exp.Table) if tree is context.parsed else tree.find_all(exp.Table)
        )
        if is_file_path_table(table, context)
    ]
