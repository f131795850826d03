"""Unit tests of the pieces under the rules: predicates, classification, allow-lists, the
report's JSON shape and positions."""

from __future__ import annotations

import doctest
import importlib
import json
import pkgutil

import pytest
import sqlglot

import querygate.analysis
from querygate.analysis import (
    EngineAllowList,
    Policy,
    Severity,
    StatementKind,
    analyze,
    classify,
)
from querygate.analysis.classify import statement_name
from querygate.analysis.predicates import is_always_true, join_pairs, selectivity

from .catalogs import lab_catalog, tpch_catalog

CATALOG = lab_catalog()


@pytest.mark.parametrize(
    ("condition", "want"),
    [
        pytest.param("TRUE", True, id="literal TRUE"),
        pytest.param("1 = 1", True, id="equal literals"),
        pytest.param("'a' = 'a'", True, id="equal strings"),
        pytest.param("1 <> 2", True, id="unequal literals compared with <>"),
        pytest.param("a = a", True, id="column compared with itself"),
        pytest.param("a > 1 OR 1 = 1", True, id="OR with a true branch"),
        pytest.param("(1 = 1)", True, id="parenthesized"),
        pytest.param("1 = 2", False, id="false literal comparison"),
        pytest.param("1 = '1'", False, id="number and string are not compared"),
        pytest.param("a = b", False, id="two columns"),
        pytest.param("1 = 1 AND a = 2", False, id="AND with a real filter"),
        pytest.param("random() = random()", False, id="random is not reflexive"),
        pytest.param("FALSE", False, id="literal FALSE"),
    ],
)
def test_is_always_true(condition: str, want: bool) -> None:
    assert is_always_true(sqlglot.parse_one(condition)) is want


@pytest.mark.parametrize(
    ("predicate", "ndv", "want"),
    [
        pytest.param("a = 1", 50, 1 / 50, id="equality uses NDV"),
        pytest.param("a = 1", None, 0.1, id="equality without NDV"),
        pytest.param("a IN (1, 2, 3)", 10, 0.3, id="IN list of three"),
        pytest.param("a > 1", None, 1 / 3, id="range"),
        pytest.param("a BETWEEN 1 AND 2", None, 0.25, id="between"),
        pytest.param("NOT a = 1", 4, 0.75, id="negation"),
        pytest.param("a = 1 AND b > 2", 2, 0.5 / 3, id="AND multiplies"),
        pytest.param("a = 1 OR a = 2", 2, 0.75, id="OR by inclusion-exclusion"),
        pytest.param("a = b", None, 1.0, id="column comparison is not estimated"),
    ],
)
def test_selectivity(predicate: str, ndv: int | None, want: float) -> None:
    got = selectivity(sqlglot.parse_one(predicate), lambda _column: ndv)
    assert got == pytest.approx(want)


def test_join_pairs_finds_equalities_shared_by_every_or_branch() -> None:
    predicate = sqlglot.parse_one(
        "(p.k = l.k AND p.b = 1) OR (p.k = l.k AND p.b = 2) OR (l.k = p.k AND p.b = 3)"
    )
    # The third branch writes the equality the other way round: still the same join.
    assert [(a.sql(), b.sql()) for a, b in join_pairs(predicate)] == [("p.k", "l.k")]
    not_shared = sqlglot.parse_one("(p.k = l.k AND p.b = 1) OR p.b = 2")
    assert join_pairs(not_shared) == []


@pytest.mark.parametrize(
    ("sql", "dialect", "want_kind", "want_name"),
    [
        ("SELECT 1", "duckdb", StatementKind.SELECT, "SELECT"),
        ("SELECT 1 UNION SELECT 2", "duckdb", StatementKind.SELECT, "SELECT"),
        ("INSERT INTO t VALUES (1)", "duckdb", StatementKind.INSERT, "INSERT"),
        ("UPDATE t SET a = 1", "postgres", StatementKind.UPDATE, "UPDATE"),
        ("DELETE FROM t", "postgres", StatementKind.DELETE, "DELETE"),
        ("CREATE TABLE t (a INT)", "duckdb", StatementKind.DDL, "CREATE"),
        ("DROP TABLE t", "duckdb", StatementKind.DDL, "DROP"),
        ("TRUNCATE t", "postgres", StatementKind.DDL, "TRUNCATE"),
        ("SELECT 1 INTO t2", "postgres", StatementKind.DDL, "SELECT"),
        ("COPY t TO 'x.csv'", "duckdb", StatementKind.OTHER, "COPY"),
        ("ATTACH 'x.db'", "duckdb", StatementKind.OTHER, "ATTACH"),
        ("PRAGMA version", "duckdb", StatementKind.OTHER, "PRAGMA"),
    ],
)
def test_classify(sql: str, dialect: str, want_kind: StatementKind, want_name: str) -> None:
    tree = sqlglot.parse_one(sql, read=dialect)
    assert classify(tree) is want_kind
    assert statement_name(tree) == want_name


ANALYST_SQL = [
    "SELECT o_orderkey, row_number() OVER (PARTITION BY o_custkey ORDER BY o_orderdate) AS rn, "
    "lag(o_totalprice) OVER (ORDER BY o_orderdate) FROM orders LIMIT 10",
    "SELECT date_trunc('month', o_orderdate) AS m, extract(year FROM o_orderdate), count(*), "
    "sum(o_totalprice), avg(o_totalprice), min(o_orderdate), max(o_orderdate), "
    "stddev(o_totalprice) FROM orders GROUP BY 1, 2",
    "SELECT upper(c_name), lower(c_name), substring(c_phone, 1, 2), trim(c_address), "
    "length(c_comment), replace(c_name, 'a', 'b'), concat(c_name, '-', c_phone), "
    "coalesce(c_comment, ''), nullif(c_acctbal, 0), CAST(c_acctbal AS INTEGER), "
    "CASE WHEN c_acctbal > 0 THEN 'pos' ELSE 'neg' END, round(c_acctbal, 1), abs(c_acctbal), "
    "greatest(c_acctbal, 0), least(c_acctbal, 0) FROM customer LIMIT 5",
    "SELECT count(DISTINCT o_custkey), string_agg(o_clerk, ','), bool_and(o_totalprice > 0) "
    "FROM orders WHERE o_orderdate >= current_date - INTERVAL '7 days'",
    "SELECT l_shipmode, sum(CASE WHEN l_discount > 0.05 THEN 1 ELSE 0 END), "
    "date_part('year', l_shipdate), now() FROM lineitem "
    "WHERE l_shipdate BETWEEN DATE '1995-01-01' AND DATE '1995-12-31' GROUP BY 1, 3",
    "SELECT regexp_replace(c_name, '[0-9]+', ''), split_part(c_phone, '-', 1), "
    "left(c_name, 3), right(c_name, 3), lpad(c_name, 20, ' '), md5(c_name) FROM customer LIMIT 3",
    "WITH big AS (SELECT o_custkey, sum(o_totalprice) AS total FROM orders GROUP BY o_custkey) "
    "SELECT c.c_name, b.total FROM big AS b JOIN customer AS c ON c.c_custkey = b.o_custkey "
    "ORDER BY b.total DESC LIMIT 10",
]


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
@pytest.mark.parametrize("sql", ANALYST_SQL, ids=lambda s: s[:40])
def test_ordinary_analyst_sql_has_no_error(sql: str, dialect: str) -> None:
    catalog = tpch_catalog("main" if dialect == "duckdb" else "public")
    report = analyze(sql, dialect=dialect, catalog=catalog)
    assert [f.rule for f in report.findings if f.severity is Severity.ERROR] == []
    assert report.decision.value != "reject"


def test_custom_allow_list_replaces_the_default() -> None:
    only_sum = Policy(allow_lists={"duckdb": EngineAllowList(function_classes=frozenset({"Sum"}))})
    sql = "SELECT sum(o_totalprice), max(o_totalprice) FROM orders"
    report = analyze(sql, dialect="duckdb", catalog=CATALOG, policy=only_sum)
    assert [(f.rule, f.message.split()[2]) for f in report.findings] == [
        ("function-not-allowed", "max()")
    ]
    assert analyze(sql, dialect="duckdb", catalog=CATALOG).decision.value == "allow"


def test_report_to_dict_is_json_with_the_api_keys() -> None:
    report = analyze("SELECT * FROM orders, customer LIMIT 5", dialect="duckdb", catalog=CATALOG)
    data = json.loads(json.dumps(report.to_dict()))
    assert {"decision", "reasons", "statement_type", "tables", "estimate", "findings", "error"} <= (
        set(data)
    )
    assert data["statement_type"] == "select"
    assert data["tables"] == ["main.customer", "main.orders"]
    assert set(data["estimate"]) >= {"rows", "bytes_scanned", "intermediate_rows", "runtime_s"}
    assert {f["rule"] for f in data["findings"]} == {"select-star", "cartesian-join"}
    finding = data["findings"][0]
    assert set(finding) == {
        *("rule", "severity", "message", "line", "column", "suggestion"),
        *("code", "params"),  # the message's template, rendered in the reader's language
    }
    assert len(data["reason_codes"]) == len(data["reasons"])


def test_parse_failure_report_has_error_object() -> None:
    data = analyze("SELECT FROM WHERE", dialect="duckdb", catalog=CATALOG).to_dict()
    assert data["decision"] == "reject"
    assert data["error"]["kind"] == "parse"
    assert data["estimate"] is None


def test_positions_count_leading_comments() -> None:
    sql = "-- monthly report\n/* owner: bob */\nSELECT nope\nFROM nation"
    report = analyze(sql, dialect="duckdb", catalog=CATALOG)
    assert [(f.rule, f.line, f.column) for f in report.findings] == [("unknown-column", 3, 8)]


def test_findings_are_sorted_by_position() -> None:
    sql = "SELECT DISTINCT *\nFROM orders\nWHERE o_comment LIKE '%x'\nORDER BY random()"
    report = analyze(sql, dialect="duckdb", catalog=CATALOG)
    positions = [(f.line, f.column) for f in report.findings]
    assert positions == sorted(positions)
    assert {"distinct-star", "leading-wildcard-like", "order-by-random"} <= set(report.rule_ids())


def test_normalized_sql_is_pretty_and_referenced_columns_listed() -> None:
    report = analyze(
        "select n_name from nation where n_regionkey=1", dialect="duckdb", catalog=CATALOG
    )
    assert report.normalized_sql == "SELECT\n  n_name\nFROM nation\nWHERE\n  n_regionkey = 1"
    assert report.columns == ("main.nation.n_name", "main.nation.n_regionkey")


def test_doctests() -> None:
    failures = 0
    for module_info in pkgutil.walk_packages(
        querygate.analysis.__path__, prefix="querygate.analysis."
    ):
        module = importlib.import_module(module_info.name)
        failures += doctest.testmod(module).failed
    failures += doctest.testmod(querygate.analysis).failed
    assert failures == 0


def test_every_prefix_of_a_query_is_analyzed_without_raising() -> None:
    """Truncated SQL (an editor sending half a query) yields findings, never an exception."""
    sql = (
        "WITH t AS (SELECT o_custkey, count(*) AS n FROM orders GROUP BY o_custkey)\n"
        "SELECT c.c_name, t.n FROM customer AS c JOIN t ON t.o_custkey = c.c_custkey\n"
        "WHERE c.c_mktsegment = 'BUILDING' ORDER BY t.n DESC LIMIT 10"
    )
    decisions = set()
    for end in range(0, len(sql) + 1, 7):
        decisions.add(analyze(sql[:end], dialect="duckdb", catalog=CATALOG).decision.value)
    assert "reject" in decisions
    assert analyze(sql, dialect="duckdb", catalog=CATALOG).decision.value == "allow"
