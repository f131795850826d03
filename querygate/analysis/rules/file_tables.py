"""``file-path-table`` (error): DuckDB reads a quoted string used as a table name
(``FROM 'data.csv'``, ``FROM 's3://bucket/x.parquet'``) as a file or URL; Spark reads a table
named ``<format>.`<path>``` (``parquet.`/data```, ``csv.`file:///etc/passwd```) as files.
On Spark, a ``CREATE TABLE ... LOCATION`` (or ``OPTIONS (path ...)``) and ``INSERT OVERWRITE
DIRECTORY`` read or write files whoever runs them, so they are refused too."""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

#: Spark's file data sources, read by ``<format>.`<path>``` in FROM.
SPARK_FILE_FORMATS = frozenset(
    {"parquet", "orc", "csv", "json", "text", "avro", "binaryfile", "delta", "xml", "hive"}
)


FILE_PATH_TABLE = template(
    "file-path-table",
    gettext_noop("'%(path)s' is read as a file or URL, which is not allowed on this warehouse."),
    gettext_noop("Query a warehouse table; ask an admin to load the file into one."),
)
PATH_STATEMENT = template(
    "file-path-table.statement",
    gettext_noop(
        "A statement that reads or writes a path (LOCATION, OPTIONS (path ...), INSERT "
        "OVERWRITE DIRECTORY) is not allowed on this warehouse."
    ),
    gettext_noop("Query the warehouse's tables; ask an admin to register files as a table."),
)


def is_file_path_table(table: exp.Table, context: RuleContext) -> bool:
    """True for a quoted table name that is no catalog table and no CTE and looks like a
    path or URL (contains ``.``, ``/``, ``\\``, ``:``, ``*`` or ``~``); on Spark, for a table
    in a file format's name (``parquet.`/x```) that is no catalog schema."""
    ident = table.this
    if context.dialect == "spark":
        db = table.db.lower()
        return db in SPARK_FILE_FORMATS and context.catalog.table(table.name, db) is None
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
            FILE_PATH_TABLE(path=table.name),
            at=table,
        )
        for table in (
            context.parsed_nodes(exp.Table) if tree is context.parsed else tree.find_all(exp.Table)
        )
        if is_file_path_table(table, context)
    ] + (_spark_locations(tree, context) if context.dialect == "spark" else [])


def _spark_locations(tree: exp.Expr, context: RuleContext) -> list[Finding]:
    """Spark statements that name a path: ``LOCATION``, ``OPTIONS (path ...)``, a directory
    written by ``INSERT OVERWRITE DIRECTORY``."""
    found: list[Finding] = []
    for node in tree.find_all(exp.LocationProperty, exp.Directory, exp.Property):
        if type(node) is exp.Property and node.name.lower() != "path":
            continue
        found.append(
            context.finding(
                "file-path-table",
                Severity.ERROR,
                PATH_STATEMENT(),
                at=node,
            )
        )
    return found
