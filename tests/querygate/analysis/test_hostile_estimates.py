"""Estimates that cannot be dodged (issue 11): memory bombs built from generators and value
builders, and expensive joins hidden in CTEs and subqueries.

Every expected number is worked out from the statement's literals or the SF1 catalog in
``catalogs.py`` (lineitem: 6,001,215 rows, l_quantity has 50 distinct values, l_comment is 27
bytes wide; orders: 1,500,000 rows) and the policy's defaults.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from querygate.analysis import Policy, analyze

from .catalogs import lab_catalog

CATALOGS = {"duckdb": lab_catalog(), "postgres": lab_catalog("public")}
POLICY = Policy()
LINEITEM_ROWS = 6_001_215
ORDERS_ROWS = 1_500_000
#: lineitem joined to itself on l_quantity (50 distinct values): the many-to-many join.
QUANTITY_JOIN_ROWS = LINEITEM_ROWS * LINEITEM_ROWS // 50


def _analyze(sql: str, dialect: str, policy: Policy = POLICY):  # type: ignore[no-untyped-def]
    return analyze(sql, dialect=dialect, catalog=CATALOGS[dialect], policy=policy)


# (dialect, SQL, the finding that refuses it). Each is refused by an error finding of the
# named rule, whose suggestion says what to change.
HOSTILE_FINDINGS = [
    # DuckDB: list and row generators
    ("duckdb", "SELECT len(range(100000000)) AS n", "generator-too-large"),
    ("duckdb", "SELECT * FROM range(10000000000)", "generator-too-large"),
    ("duckdb", "SELECT count(*) FROM generate_series(1, 1e12)", "generator-too-large"),
    ("duckdb", "SELECT len(range(10*1000*1000*1000))", "generator-too-large"),
    ("duckdb", "SELECT len(range(CAST(1e9 AS BIGINT)))", "generator-too-large"),
    ("duckdb", "SELECT count(*) FROM range(-1000000000, 0)", "generator-too-large"),
    ("duckdb", "SELECT count(*) FROM range(0, -1e9, -1)", "generator-too-large"),
    ("duckdb", "SELECT unnest(range(100000000))", "generator-too-large"),
    ("duckdb", "SELECT count(*) FROM unnest(range(2 ** 30))", "generator-too-large"),
    (
        "duckdb",
        "SELECT count(*) FROM range(TIMESTAMP '2000-01-01', TIMESTAMP '2030-01-01', "
        "INTERVAL 1 SECOND)",
        "generator-too-large",
    ),
    (
        "duckdb",
        "WITH g AS (SELECT * FROM range(1e9)) SELECT count(*) FROM g",
        "generator-too-large",
    ),
    ("duckdb", "SELECT (SELECT count(*) FROM range(1e9)) AS n", "generator-too-large"),
    ("duckdb", "SELECT range(range(10))", "unbounded-generator"),
    ("duckdb", "SELECT o_orderkey, range(o_custkey) FROM orders LIMIT 5", "unbounded-generator"),
    (
        "duckdb",
        "SELECT * FROM orders, LATERAL (SELECT * FROM range(o_custkey)) LIMIT 5",
        "unbounded-generator",
    ),
    (
        "duckdb",
        "SELECT count(*) FROM range((SELECT max(o_orderkey) FROM orders))",
        "unbounded-generator",
    ),
    # DuckDB: string and list builders
    ("duckdb", "SELECT repeat('x', 1000000000)", "value-too-large"),
    ("duckdb", "SELECT lpad('a', 2000000000, 'b')", "value-too-large"),
    ("duckdb", "SELECT rpad('a', 2000000000, 'b')", "value-too-large"),
    ("duckdb", "SELECT repeat([1, 2, 3], 1000000000)", "value-too-large"),
    ("duckdb", "SELECT repeat(repeat('x', 100000), 100000)", "value-too-large"),
    ("duckdb", "SELECT 'a' || repeat('x', 500000000)", "value-too-large"),
    ("duckdb", "SELECT printf('%1000000000d', 1)", "value-too-large"),
    ("duckdb", "SELECT printf('%.1000000000f', 1.0)", "value-too-large"),
    ("duckdb", "SELECT printf('%*d', 1000000000, 1)", "value-too-large"),
    ("duckdb", "SELECT format('{:>1000000000}', 1)", "value-too-large"),
    ("duckdb", "SELECT printf('%*d', o_custkey, 1) FROM orders LIMIT 1", "unbounded-generator"),
    ("duckdb", "SELECT lpad('a', o_custkey::INT, 'b') FROM orders LIMIT 1", "unbounded-generator"),
    ("duckdb", "SELECT repeat('x', l_linenumber) FROM lineitem LIMIT 1", "unbounded-generator"),
    # DuckDB: aggregates that build one value of their rows
    ("duckdb", "SELECT list(repeat('x', 100)) FROM range(5000000)", "value-too-large"),
    ("duckdb", "SELECT string_agg(repeat('y', 1000), ',') FROM range(1000000)", "value-too-large"),
    ("duckdb", "SELECT array_agg(l_comment) FROM lineitem, range(3)", "value-too-large"),
    # DuckDB: counting recursive CTEs
    (
        "duckdb",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 1e9) "
        "SELECT count(*) FROM t",
        "generator-too-large",
    ),
    (
        "duckdb",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n > 0) "
        "SELECT count(*) FROM t",
        "unbounded-generator",
    ),
    # DuckDB: several values within the limit put together
    (
        "duckdb",
        "SELECT list_value(repeat('x', 200000000), repeat('x', 200000000))",
        "value-too-large",
    ),
    ("duckdb", "SELECT repeat('x', 200000000) || repeat('y', 200000000)", "value-too-large"),
    # DuckDB: a value built from a column, 2,048 rows at a time
    ("duckdb", "SELECT repeat(l_comment, 100000) FROM lineitem LIMIT 1", "value-too-large"),
    ("duckdb", "SELECT l_comment || repeat('x', 200000) FROM lineitem LIMIT 1", "value-too-large"),
    # DuckDB: recursive CTEs that multiply rows or grow values
    (
        "duckdb",
        "WITH RECURSIVE t(n, s) AS (SELECT 1, 'x' UNION ALL SELECT n + 1, s || s FROM t "
        "WHERE n < 40) SELECT max(length(s)) FROM t",
        "value-too-large",
    ),
    (
        "duckdb",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t, range(10) "
        "WHERE n < 8) SELECT count(*) FROM t",
        "generator-too-large",
    ),
    (
        "duckdb",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 60 "
        "UNION ALL SELECT n + 2 FROM t WHERE n < 60) SELECT count(*) FROM t",
        "generator-too-large",
    ),
    (
        "duckdb",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10 "
        "UNION ALL SELECT n FROM t) SELECT count(*) FROM t",
        "unbounded-recursive-cte",
    ),
    (
        "duckdb",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n FROM t WHERE n < 10) "
        "SELECT count(*) FROM t",
        "unbounded-generator",
    ),
    (
        "duckdb",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT a.n + 1 FROM t a, t b "
        "WHERE a.n < 30) SELECT count(*) FROM t",
        "generator-too-large",
    ),
    # DuckDB: a lambda over a generated list, a value built in a derived table or CTE and
    # aggregated outside it, a window that builds a growing value for every row
    ("duckdb", "SELECT list_transform(range(5000000), x -> repeat('x', 100))", "value-too-large"),
    (
        "duckdb",
        "SELECT string_agg(x, ',') FROM (SELECT repeat('x', 1000) AS x FROM range(1000000))",
        "value-too-large",
    ),
    (
        "duckdb",
        "WITH c AS (SELECT repeat('x', 1000) AS x FROM range(1000000)) SELECT list(x) FROM c",
        "value-too-large",
    ),
    (
        "duckdb",
        "SELECT string_agg(l_comment, ',') OVER (ORDER BY l_orderkey) FROM lineitem LIMIT 1",
        "value-too-large",
    ),
    # A LIMIT that does not stop reading a recursion: the aggregate, ORDER BY or the
    # derived table under it reads every row first
    (
        "duckdb",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) "
        "SELECT count(*) FROM r LIMIT 10",
        "unbounded-recursive-cte",
    ),
    (
        "duckdb",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n > 0) "
        "SELECT n FROM r ORDER BY n DESC LIMIT 10",
        "unbounded-generator",
    ),
    (
        "postgres",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) "
        "SELECT * FROM (SELECT max(n) AS m FROM r) AS s LIMIT 1",
        "unbounded-recursive-cte",
    ),
    # Functions that amplify their arguments: every match may become the replacement, every
    # element gets a separator
    (
        "duckdb",
        "SELECT replace(repeat('a', 100000), 'a', repeat('b', 10000))",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT regexp_replace(repeat('a', 100000), '', repeat('b', 10000), 'g')",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT concat_ws(',', repeat('x', 200000000), repeat('y', 200000000))",
        "value-too-large",
    ),
    ("duckdb", "SELECT array_to_string(range(5000000), repeat('-', 60))", "value-too-large"),
    # Values a CTE or derived table built, put together outside it
    (
        "duckdb",
        "WITH c AS (SELECT range(5000000) AS l) SELECT list_concat(l, l, l, l, l, l, l) FROM c",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT s || s FROM (SELECT repeat('x', 200000000) AS s) AS t",
        "value-too-large",
    ),
    # A built value kept for every row as a sort, group, DISTINCT or window key
    (
        "postgres",
        "SELECT l_orderkey FROM lineitem ORDER BY repeat(l_comment, 10000) LIMIT 10",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT repeat(l_comment, 10000), count(*) FROM lineitem GROUP BY 1 LIMIT 10",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT DISTINCT repeat(l_comment, 10000) FROM lineitem LIMIT 10",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT rank() OVER (ORDER BY repeat(l_comment, 10000)) FROM lineitem LIMIT 10",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT repeat(l_comment, 10000) AS r FROM lineitem ORDER BY r LIMIT 10",
        "value-too-large",
    ),
    # Spans relative to now: constant length, but a second-by-second year is too long; a
    # span from a literal to now grows with time (the analysis has no clock)
    (
        "duckdb",
        "SELECT count(*) FROM generate_series(current_timestamp - INTERVAL 1 YEAR, "
        "current_timestamp, INTERVAL 1 SECOND)",
        "generator-too-large",
    ),
    (
        "postgres",
        "SELECT * FROM generate_series(DATE '2000-01-01', current_date, interval '1 day')",
        "unbounded-generator",
    ),
    # Constants that overflow or are not numbers, and parameters
    ("duckdb", "SELECT range(1e400)", "generator-too-large"),
    ("duckdb", "SELECT repeat('x', 10 ^ 400)", "value-too-large"),
    ("postgres", "SELECT * FROM generate_series(0, 'nan'::float8)", "generator-too-large"),
    ("duckdb", "SELECT * FROM range(?)", "unbounded-generator"),
    ("postgres", "SELECT * FROM generate_series(1, $1)", "unbounded-generator"),
    # PostgreSQL
    ("postgres", "SELECT * FROM generate_series(1, 20000000)", "generator-too-large"),
    (
        "postgres",
        "SELECT array_agg(g) FROM generate_series(1, 10000000) g, generate_series(1, 10) h",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT concat(lpad('a', 200000000, 'b'), rpad('a', 200000000, 'b'))",
        "value-too-large",
    ),
    (
        "postgres",
        "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 100000000) "
        "SELECT count(*) FROM t",
        "generator-too-large",
    ),
    ("postgres", "SELECT generate_series(1, 20000000)", "generator-too-large"),
    ("postgres", "SELECT count(*) FROM generate_series(1, 10^9)", "generator-too-large"),
    (
        "postgres",
        "SELECT string_agg(g::text, ',') FROM generate_series(1, 100000000) g",
        "generator-too-large",
    ),
    (
        "postgres",
        "SELECT g FROM generate_series(1, 100000000) g ORDER BY g DESC",
        "generator-too-large",
    ),
    (
        "postgres",
        "SELECT count(*) FROM generate_series(timestamp '2000-01-01', timestamp '2030-01-01', "
        "interval '1 second')",
        "generator-too-large",
    ),
    (
        "postgres",
        "SELECT count(*) FROM generate_series(date '2000-01-01', date '2030-01-01', "
        "'1 minute'::interval)",
        "generator-too-large",
    ),
    ("postgres", "SELECT repeat('x', 1e9::int)", "value-too-large"),
    ("postgres", "SELECT repeat('x', 1000000000)", "value-too-large"),
    ("postgres", "SELECT lpad('a', 1000000000, 'b')", "value-too-large"),
    ("postgres", "SELECT rpad('', 300000000)", "value-too-large"),
    ("postgres", "SELECT format('%1000000000s', 'x')", "value-too-large"),
    ("postgres", "SELECT format('%s', repeat('x', 500000000))", "value-too-large"),
    (
        "postgres",
        "SELECT array_agg(repeat('x', 100)) FROM generate_series(1, 5000000)",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT string_agg(l_comment || l_shipinstruct || l_comment, ',') FROM lineitem",
        "value-too-large",
    ),
    (
        "postgres",
        "SELECT generate_series(1, l_linenumber::int) FROM lineitem",
        "unbounded-generator",
    ),
    (
        "postgres",
        "SELECT * FROM generate_series(1, (SELECT max(o_orderkey) FROM orders)) g LIMIT 5",
        "unbounded-generator",
    ),
    (
        "postgres",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 100000000) "
        "SELECT max(n) FROM t",
        "generator-too-large",
    ),
]


@pytest.mark.parametrize(
    ("dialect", "sql", "rule"), HOSTILE_FINDINGS, ids=[f"{d}: {s}" for d, s, _ in HOSTILE_FINDINGS]
)
def test_hostile_statement_is_refused(dialect: str, sql: str, rule: str) -> None:
    report = _analyze(sql, dialect)
    assert report.decision.value == "reject", report.reasons
    findings = [f for f in report.findings if f.rule == rule]
    assert findings, report.rule_ids()
    assert all(f.severity.value == "error" and f.suggestion for f in findings)
    assert all(f.line >= 1 and f.column >= 1 for f in findings)


def test_overflowing_sizes_are_named_in_words() -> None:
    report = _analyze("SELECT range(1e400)", "duckdb")
    assert "more than 10^18 rows" in report.findings[0].message
    assert "inf" not in report.findings[0].message


def test_enough_distinct_hostile_statements() -> None:
    statements = {(d, s) for d, s, _ in HOSTILE_FINDINGS}
    assert len(statements) == len(HOSTILE_FINDINGS) >= 25
    assert {d for d, _ in statements} == {"duckdb", "postgres"}


# Statements refused by the estimate itself (intermediate rows or result bytes), not a finding.
HOSTILE_ESTIMATES = [
    ("duckdb", "SELECT count(*) FROM range(1000000) a, range(1000000) b", "intermediate rows"),
    (
        "postgres",
        "SELECT count(*) FROM generate_series(1, 5000) a CROSS JOIN generate_series(1, 5000) b "
        "CROSS JOIN generate_series(1, 5000) c",
        "intermediate rows",
    ),
    ("postgres", "SELECT count(*) FROM lineitem, generate_series(1, 5000) g", "intermediate rows"),
    ("postgres", "SELECT repeat('x', 1000000) FROM generate_series(1, 1000000)", "of result"),
    ("duckdb", "SELECT l_comment, repeat(l_comment, 100) FROM lineitem", "of result"),
]


@pytest.mark.parametrize(
    ("dialect", "sql", "reason"), HOSTILE_ESTIMATES, ids=[s for _, s, _ in HOSTILE_ESTIMATES]
)
def test_hostile_estimate_is_refused(dialect: str, sql: str, reason: str) -> None:
    report = _analyze(sql, dialect)
    assert report.decision.value == "reject"
    assert any(reason in r for r in report.reasons), report.reasons


def test_generator_cross_join_multiplies_rows() -> None:
    report = _analyze("SELECT count(*) FROM range(1000000) a, range(1000000) b", "duckdb")
    assert report.estimate is not None
    assert report.estimate.intermediate_rows == 1_000_000 * 1_000_000
    assert report.estimate.generated_rows == 2 * 1_000_000


def test_result_bytes_are_rows_times_row_width() -> None:
    # l_comment averages 27 bytes (the catalog); repeat(l_comment, 100) builds 100 times that.
    report = _analyze("SELECT l_comment, repeat(l_comment, 100) FROM lineitem", "duckdb")
    assert report.estimate is not None
    assert report.estimate.rows == LINEITEM_ROWS
    assert report.estimate.result_bytes == LINEITEM_ROWS * (27 + 100 * 27)
    assert report.to_dict()["estimate"]["result_bytes"] == report.estimate.result_bytes


# Small literal bounds: allowed, with the estimate the literals give.
SMALL = [
    # (dialect, SQL, rows, generated rows, bytes built)
    ("duckdb", "SELECT * FROM range(0, 10, 2)", 5, 5, 0),
    ("duckdb", "SELECT * FROM range(10, 0, -3)", 4, 4, 0),  # 10, 7, 4, 1
    ("duckdb", "SELECT * FROM generate_series(1, 10)", 10, 10, 0),  # the end is included
    ("duckdb", "SELECT * FROM range(0, 10, 0)", 0, 0, 0),  # a zero step is an error
    (
        "duckdb",
        "SELECT * FROM range(DATE '2024-01-01', DATE '2025-01-01', INTERVAL 1 DAY)",
        366,
        366,
        0,
    ),
    ("duckdb", "SELECT range(10 * 1000)", 1, 10_000, 80_000),  # a list of 10,000 BIGINTs
    ("duckdb", "SELECT unnest([1, 2, 3])", 3, 0, 0),
    ("duckdb", "SELECT * FROM (VALUES (1), (2), (3)) AS v(x)", 3, 0, 0),
    ("duckdb", "SELECT repeat('ab', 1000)", 1, 0, 2_000),
    ("duckdb", "SELECT lpad('7', 10 * 1000, '0')", 1, 0, 10_000),
    ("duckdb", "SELECT printf('%20d', 7)", 1, 0, len("%20d") + 8 + 20),
    ("duckdb", "SELECT list(x) FROM range(1000) AS t(x)", 1, 1_000, 8_000),
    ("postgres", "SELECT * FROM generate_series(1, 10, 3)", 4, 4, 0),  # 1, 4, 7, 10
    ("postgres", "SELECT generate_series(1, 1000)", 1_000, 1_000, 0),
    ("postgres", "SELECT * FROM generate_series(1, 10, -1)", 0, 0, 0),  # steps away: none
    (
        "postgres",
        "SELECT * FROM generate_series(timestamp '2024-01-01', timestamp '2024-01-02', "
        "interval '1 hour')",
        25,
        25,
        0,
    ),
    ("postgres", "SELECT repeat('x', 1e3::int)", 1, 0, 1_000),
    (
        "postgres",
        "SELECT * FROM generate_series(current_date - 30, current_date, interval '1 day')",
        31,
        31,
        0,
    ),
    (
        "duckdb",
        "SELECT * FROM range(now() - INTERVAL 1 DAY, now(), INTERVAL 1 MINUTE)",
        1_440,
        1_440,
        0,
    ),
    ("postgres", "SELECT * FROM unnest(ARRAY[1, 2, 3])", 3, 0, 0),
    (
        "postgres",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) "
        "SELECT n FROM t",
        10,
        10,
        0,
    ),
]


# Allowed shapes near the hostile ones: (dialect, SQL).
ALLOWED = [
    # A geometric counter: 2 ** 996 < 1e300, so 997 rows.
    (
        "duckdb",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n * 2 FROM t WHERE n < 1e300) "
        "SELECT count(*) FROM t",
    ),
    # A walk over a table's hierarchy: bounded by its data.
    (
        "duckdb",
        "WITH RECURSIVE r AS (SELECT n_nationkey AS k, 0 AS d FROM nation UNION ALL "
        "SELECT n.n_nationkey, r.d + 1 FROM nation AS n JOIN r ON n.n_regionkey = r.k "
        "WHERE r.d < 3) SELECT count(*) FROM r",
    ),
    # A path that grows by a bounded piece per step.
    (
        "postgres",
        "WITH RECURSIVE p(n, path) AS (SELECT 1, 'root' UNION ALL "
        "SELECT n + 1, path || '/' || 'child' FROM p WHERE n < 100) SELECT max(path) FROM p",
    ),
    # PostgreSQL evaluates a row at a time: 2.6 MiB per value is within the limit.
    ("postgres", "SELECT repeat(l_comment, 100000) FROM lineitem LIMIT 1"),
    ("duckdb", "SELECT repeat(l_comment, 1000) FROM lineitem LIMIT 1"),
    # A window whose frame is bounded: 11 comments per value.
    (
        "duckdb",
        "SELECT string_agg(l_comment, ',') OVER (ORDER BY l_orderkey "
        "ROWS BETWEEN 10 PRECEDING AND CURRENT ROW) FROM lineitem LIMIT 1",
    ),
    ("duckdb", "SELECT len(list_transform(range(1000), x -> x + 1))"),
    ("duckdb", "SELECT replace(l_comment, ',', ';') FROM lineitem LIMIT 5"),
    ("duckdb", "WITH c AS (SELECT repeat('x', 100) AS s) SELECT s || s FROM c"),
    # Row at a time, not a key: 0.26 MiB per value, ten of them returned.
    ("postgres", "SELECT repeat(l_comment, 10000) AS r FROM lineitem LIMIT 10"),
    ("postgres", "SELECT l_orderkey FROM lineitem ORDER BY lpad(l_comment, 30) LIMIT 10"),
    ("postgres", "SELECT array_to_string(ARRAY[1, 2, 3], ', ')"),
    # A LIMIT read straight from a recursion stops it on both engines.
    (
        "postgres",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n > 0) "
        "SELECT n FROM r LIMIT 10",
    ),
    # A constant built once (DuckDB folds it), read for every row.
    ("duckdb", "SELECT len(range(5000000)) AS n FROM lineitem LIMIT 10"),
]


@pytest.mark.parametrize(("dialect", "sql"), ALLOWED, ids=[s for _, s in ALLOWED])
def test_bounded_shapes_are_allowed(dialect: str, sql: str) -> None:
    report = _analyze(sql, dialect)
    assert report.decision.value == "allow", report.reasons


def test_geometric_counter_rows() -> None:
    report = _analyze(ALLOWED[0][1], "duckdb")
    assert report.estimate is not None
    assert report.estimate.generated_rows == 997  # 1, 2, 4 ... 2 ** 996


@pytest.mark.parametrize(("dialect", "sql", "rows", "generated", "built"), SMALL)
def test_small_literal_bounds_are_allowed_with_their_estimate(
    dialect: str, sql: str, rows: int, generated: int, built: int
) -> None:
    report = _analyze(sql, dialect)
    assert report.decision.value == "allow", report.reasons
    assert report.estimate is not None
    assert report.estimate.rows == rows
    assert report.estimate.generated_rows == generated
    assert report.estimate.bytes_built == built


def test_generator_limits_are_policy_fields() -> None:
    tight = replace(POLICY, max_generated_rows=100, max_bytes_built=1000, max_result_bytes=10**6)
    assert _analyze("SELECT * FROM range(101)", "duckdb", tight).rule_ids() == [
        "generator-too-large"
    ]
    assert _analyze("SELECT * FROM range(100)", "duckdb", tight).decision.value == "allow"
    assert _analyze("SELECT repeat('x', 1001)", "duckdb", tight).rule_ids() == ["value-too-large"]
    big = _analyze("SELECT l_comment FROM lineitem LIMIT 100000", "duckdb", tight)
    assert big.decision.value == "reject"
    assert any("of result" in r for r in big.reasons)


def test_new_safety_findings_cannot_be_overridden() -> None:
    for rule in ("unbounded-generator", "generator-too-large", "value-too-large"):
        with pytest.raises(ValueError, match="safety"):
            Policy(severity_overrides={rule: "warn"})


# A many-to-many join rejected plain must be rejected, with no smaller intermediate estimate,
# in every wrapping: (dialect, SQL with {join} where the join goes).
JOIN = "lineitem a JOIN lineitem b ON a.l_quantity = b.l_quantity"
WRAPPINGS = [
    ("duckdb", "SELECT count(*) FROM {join}"),
    ("duckdb", "WITH x AS (SELECT a.l_orderkey FROM {join}) SELECT count(*) FROM x"),
    (
        "duckdb",
        "WITH x AS (SELECT a.l_orderkey AS k FROM {join}), y AS (SELECT k FROM x) "
        "SELECT count(*) FROM y",
    ),
    ("duckdb", "SELECT count(*) FROM (SELECT a.l_orderkey FROM {join}) AS d"),
    ("duckdb", "SELECT (SELECT count(*) FROM {join}) AS n"),
    (
        "duckdb",
        "SELECT o_orderkey FROM orders WHERE o_orderkey IN (SELECT a.l_orderkey FROM {join}) "
        "LIMIT 10",
    ),
    (
        "duckdb",
        "SELECT o_orderkey FROM orders WHERE EXISTS (SELECT 1 FROM {join} "
        "WHERE a.l_orderkey = o_orderkey) LIMIT 10",
    ),
    (
        "duckdb",
        "SELECT o_orderstatus, count(*) FROM orders GROUP BY o_orderstatus "
        "HAVING count(*) > (SELECT count(*) FROM {join})",
    ),
    (
        "duckdb",
        "SELECT count(*) FROM orders JOIN customer ON o_custkey = c_custkey "
        "AND c_acctbal > (SELECT max(a.l_tax) FROM {join})",
    ),
    (
        "duckdb",
        "SELECT count(*) FROM (SELECT 1 AS one FROM region UNION ALL SELECT 1 FROM {join}) AS u",
    ),
    (
        "duckdb",
        "SELECT count(*) FROM orders, LATERAL (SELECT a.l_orderkey FROM {join} "
        "WHERE a.l_orderkey = o_orderkey) AS l",
    ),
    (
        "duckdb",
        "SELECT count(*) FROM (VALUES (1), (2)) AS v(x), (SELECT a.l_orderkey FROM {join}) AS d",
    ),
    (
        "duckdb",
        "WITH RECURSIVE r(k, d) AS (SELECT a.l_orderkey, 1 FROM {join} UNION ALL "
        "SELECT k, d + 1 FROM r WHERE d < 3) SELECT count(*) FROM r",
    ),
    ("postgres", "WITH x AS MATERIALIZED (SELECT a.l_orderkey FROM {join}) SELECT count(*) FROM x"),
    ("postgres", "SELECT count(*) FROM (SELECT (SELECT count(*) FROM {join}) AS n) AS s"),
]


@pytest.mark.parametrize(("dialect", "template"), WRAPPINGS, ids=[t for _, t in WRAPPINGS])
def test_wrapping_a_rejected_join_cannot_lower_its_estimate(dialect: str, template: str) -> None:
    plain = _analyze("SELECT count(*) FROM " + JOIN, dialect)  # noqa: S608 - never run
    assert plain.decision.value == "reject"
    assert plain.estimate is not None
    assert plain.estimate.intermediate_rows == QUANTITY_JOIN_ROWS
    report = _analyze(template.format(join=JOIN), dialect)
    assert report.decision.value == "reject", report.reasons
    assert report.estimate is not None
    assert report.estimate.intermediate_rows >= plain.estimate.intermediate_rows
    assert report.estimate.cost_class == "excessive"


# The same many-to-many join written as a correlated subquery: no join in any one scope.
CORRELATED = [
    (
        "duckdb",
        "SELECT (SELECT count(*) FROM lineitem b WHERE b.l_quantity = a.l_quantity) "
        "FROM lineitem a",
        QUANTITY_JOIN_ROWS,
    ),
    (
        "duckdb",
        "SELECT count(*) FROM lineitem a WHERE a.l_tax < "
        "(SELECT avg(b.l_tax) FROM lineitem b WHERE b.l_quantity = a.l_quantity)",
        QUANTITY_JOIN_ROWS,
    ),
    (
        "postgres",
        "SELECT count(*) FROM lineitem a WHERE EXISTS "
        "(SELECT 1 FROM lineitem b WHERE b.l_quantity = a.l_quantity AND b.l_tax > a.l_tax)",
        QUANTITY_JOIN_ROWS,
    ),
    (
        # No equality: every pair of orders is compared.
        "postgres",
        "SELECT count(*) FROM orders o WHERE o.o_totalprice > ALL "
        "(SELECT p.o_totalprice FROM orders p WHERE p.o_orderdate < o.o_orderdate)",
        ORDERS_ROWS * ORDERS_ROWS // 3,
    ),
]


@pytest.mark.parametrize(
    ("dialect", "sql", "at_least"), CORRELATED, ids=[s for _, s, _ in CORRELATED]
)
def test_correlated_subquery_is_estimated_as_its_join(
    dialect: str, sql: str, at_least: int
) -> None:
    report = _analyze(sql, dialect)
    assert report.decision.value == "reject", report.reasons
    assert report.estimate is not None
    assert report.estimate.intermediate_rows >= at_least


def test_correlated_key_lookup_stays_allowed() -> None:
    # Correlated on orders' key: the decorrelated join keeps lineitem's rows.
    report = _analyze(
        "SELECT l_orderkey, (SELECT o_orderdate FROM orders WHERE o_orderkey = l_orderkey) "
        "FROM lineitem LIMIT 10",
        "duckdb",
    )
    assert report.decision.value == "allow", report.reasons
    assert report.estimate is not None
    assert report.estimate.intermediate_rows <= LINEITEM_ROWS


# The same join with each side wrapped: the join reads CTE or derived-table columns, whose
# distinct counts are the wrapped columns'.
SIDES_WRAPPED = [
    (
        "duckdb",
        "SELECT count(*) FROM (SELECT l_quantity AS q FROM lineitem) AS a "
        "JOIN (SELECT l_quantity AS q FROM lineitem) AS b ON a.q = b.q",
    ),
    (
        "duckdb",
        "WITH a AS (SELECT l_quantity AS q FROM lineitem) SELECT count(*) FROM a AS x "
        "JOIN a AS y ON x.q = y.q",
    ),
    (
        "postgres",
        "WITH a AS (SELECT l_quantity AS q, l_orderkey FROM lineitem), b AS (SELECT q FROM a) "
        "SELECT count(*) FROM b AS x JOIN b AS y ON x.q = y.q",
    ),
    (
        "duckdb",
        "SELECT count(*) FROM (SELECT l_quantity, l_orderkey FROM lineitem) AS a "
        "NATURAL JOIN (SELECT l_quantity, l_partkey FROM lineitem) AS b",
    ),
    ("postgres", "SELECT count(*) FROM lineitem AS a JOIN lineitem AS b USING (l_quantity)"),
]


@pytest.mark.parametrize(("dialect", "sql"), SIDES_WRAPPED, ids=[s for _, s in SIDES_WRAPPED])
def test_wrapping_each_side_of_a_join_cannot_hide_it(dialect: str, sql: str) -> None:
    report = _analyze(sql, dialect)
    assert report.decision.value == "reject", report.reasons
    assert "exploding-join" in report.rule_ids()
    assert report.estimate is not None
    assert report.estimate.intermediate_rows >= QUANTITY_JOIN_ROWS


def test_join_on_a_derived_key_stays_allowed() -> None:
    # orders' key passed through a derived table is still a key: lineitem's rows.
    report = _analyze(
        "SELECT count(*) FROM lineitem JOIN (SELECT o_orderkey AS k FROM orders) AS o "
        "ON l_orderkey = o.k",
        "duckdb",
    )
    assert report.decision.value == "allow", report.reasons
    assert report.estimate is not None
    assert report.estimate.intermediate_rows == LINEITEM_ROWS
