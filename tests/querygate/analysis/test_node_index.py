"""The rule context's node index: one walk of the parsed tree answers what ``find_all`` would."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from querygate.analysis import Policy, StatementKind, classify
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
    exp.Column,
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
        assert [id(n) for n in context.parsed_nodes(kind)] == [id(n) for n in expected]
        assert context.has_parsed_node((kind,)) == bool(expected)
    assert context.parsed_node_count == len(list(context.parsed.walk()))
    assert context.statement_kind is classify(context.parsed)


def test_statement_kind_from_index_is_select_for_plain_queries() -> None:
    assert _context("SELECT a FROM t", "duckdb").statement_kind is StatementKind.SELECT
