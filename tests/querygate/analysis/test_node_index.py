"""The rule context's node index: one walk of the parsed tree finds what ``find_all`` would
(the same nodes, in no particular order)."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify

from querygate.analysis import (
    Catalog,
    ColumnStats,
    Policy,
    StatementKind,
    TableStats,
    analyze,
    classify,
)
from querygate.analysis.context import RuleContext

from .catalogs import lab_catalog

SQL = [
    "SELECT 1",
    "WITH a AS (SELECT x FROM t ORDER BY random()), b AS (SELECT * FROM a) "
    "SELECT upper(b.x), count(*) OVER (ORDER BY b.x) FROM b JOIN a ON a.x = b.x "
    "WHERE b.x LIKE '%z' AND EXISTS (SELECT 1 FROM u WHERE u.y = b.x) "
    "UNION SELECT lower(y), 1 FROM u ORDER BY 1",
    "SELECT * FROM t DISTRIBUTE BY x SORT BY x",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "INSERT INTO t SELECT * FROM u",
]
KINDS = [
    exp.Select,
    exp.Join,
    exp.Where,
    exp.Order,
    exp.Func,
    exp.AggFunc,
    exp.Table,
    exp.CTE,
    exp.With,
    exp.Union,
    exp.Query,
    exp.Like,
]


def _context(sql: str, dialect: str) -> RuleContext:
    parsed = sqlglot.parse_one(sql, read=dialect)
    return RuleContext(sql, dialect, lab_catalog(), Policy(), parsed)


@pytest.mark.parametrize("sql", SQL)
def test_parsed_nodes_match_find_all(sql: str) -> None:
    dialect = "hive" if "DISTRIBUTE" in sql else "postgres"
    context = _context(sql, dialect)
    for kind in KINDS:
        expected = list(context.parsed.find_all(kind))
        assert sorted(id(n) for n in context.parsed_nodes(kind)) == sorted(id(n) for n in expected)
        assert context.has_parsed_node((kind,)) == bool(expected)
    assert context.parsed_node_count == len(list(context.parsed.walk()))
    columns = list(context.parsed.find_all(exp.Column))
    assert sorted(id(n) for n in context.parsed_nodes(exp.Column)) == sorted(map(id, columns))
    assert context.statement_kind is classify(context.parsed)


def test_statement_kind_from_index_is_select_for_plain_queries() -> None:
    assert _context("SELECT a FROM t", "duckdb").statement_kind is StatementKind.SELECT


NORMALIZE = [
    ("duckdb", 'SELECT "Foo".Bar, T.Baz, s.Addr.City FROM Tab AS T, "Other" AS "Foo", S'),
    ("postgres", 'SELECT "Foo".Bar, t.a.b.c, T.* FROM Tab AS T JOIN "Mixed" AS "Foo" ON 1 = 1'),
    ("postgres", "SELECT (Rec).Field, Upper(Name) FROM T WHERE EXISTS (SELECT X FROM U)"),
]


def _meta(tree: exp.Expr) -> list[tuple[str, object]]:
    return [(n.sql(), (n.meta or {}).get("dot_parts")) for n in tree.walk()]


@pytest.mark.parametrize(("dialect", "sql"), NORMALIZE)
def test_indexing_normalizes_identifiers_exactly_as_sqlglot_does(dialect: str, sql: str) -> None:
    ours = _context(sql, dialect)
    ours.index_tree(normalize=True)
    theirs = normalize_identifiers(
        sqlglot.parse_one(sql, read=dialect),
        dialect=dialect,
        store_original_column_identifiers=True,
    )
    assert ours.identifiers_normalized
    assert ours.parsed.sql(dialect=dialect) == theirs.sql(dialect=dialect)
    assert ours.parsed == theirs
    assert _meta(ours.parsed) == _meta(theirs)  # the original names qualification may need
    assert any(parts for _, parts in _meta(theirs))


def test_a_case_sensitive_comment_leaves_normalizing_to_sqlglot() -> None:
    sql = "SELECT Abc /* sqlglot.meta case_sensitive */ FROM T"
    context = _context(sql, "duckdb")
    context.index_tree(normalize=True)
    assert not context.identifiers_normalized
    assert context.parsed.sql() == "SELECT Abc /* sqlglot.meta case_sensitive */ FROM T"
    catalog = Catalog((TableStats("t", (ColumnStats("abc"),)),))
    try:  # what sqlglot's own qualify makes of the comment
        qualify(sqlglot.parse_one(sql, read="duckdb"), schema=catalog.sqlglot_schema())
        sqlglot_resolves = True
    except OptimizeError:
        sqlglot_resolves = False
    report = analyze(sql, dialect="duckdb", catalog=catalog)
    assert ("unknown-column" not in report.rule_ids()) is sqlglot_resolves


def test_an_index_built_without_normalizing_leaves_the_tree_as_written() -> None:
    context = _context("SELECT A FROM T", "duckdb")
    assert context.parsed_nodes(exp.Column)  # builds the index on first use
    assert not context.identifiers_normalized
    assert context.parsed.sql() == "SELECT A FROM T"
