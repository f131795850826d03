"""TPC-H and TPC-DS queries from the DuckDB extensions pass the gate without false errors.

The TPC-H catalog is the hand-written SF1 snapshot (``catalogs.tpch_catalog``): the first
test checks it against the schema DuckDB generates, so the data cannot drift from the real
tables. The TPC-DS catalog is read from generated sf=0.01 data (``warehouse.generated``).
"""

from __future__ import annotations

import pytest

from querygate.analysis import Severity, analyze

from .catalogs import tpch_catalog
from .warehouse import generated

TPCH_SF1 = tpch_catalog()
# TPC-H Q13 filters orders (1.5M rows at SF1, "large" by the default policy) with
# o_comment NOT LIKE '%special%requests%': a deserved leading-wildcard warning.
TPCH_WANT_WARNINGS = {13: ["leading-wildcard-like"]}
SAFETY_RULES = {
    "parse-error",
    "unknown-table",
    "unknown-column",
    "function-not-allowed",
    "table-function-not-allowed",
    "statement-not-allowed",
    "file-path-table",
    "write-not-allowed",
    "multiple-statements",
}


def test_tpch_catalog_matches_generated_schema() -> None:
    generated_catalog, _ = generated("tpch")
    want = {t.name: [(c.name, c.type) for c in t.columns] for t in generated_catalog.tables}
    got = {t.name: [(c.name, c.type) for c in t.columns] for t in TPCH_SF1.tables}
    assert got == want


def test_tpch_has_22_queries() -> None:
    assert [n for n, _ in generated("tpch")[1]] == list(range(1, 23))


@pytest.mark.parametrize("number", range(1, 23), ids=lambda n: f"tpch-q{n:02d}")
@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_tpch_query_passes(number: int, dialect: str) -> None:
    sql = dict(generated("tpch")[1])[number]
    catalog = TPCH_SF1 if dialect == "duckdb" else tpch_catalog("public")
    report = analyze(sql, dialect=dialect, catalog=catalog)
    assert report.error is None
    assert report.estimate is not None
    assert [f.rule for f in report.findings] == TPCH_WANT_WARNINGS.get(number, [])
    assert report.decision.value == ("warn" if number in TPCH_WANT_WARNINGS else "allow")
    assert (
        "main.lineitem" in report.tables
        or "public.lineitem" in report.tables
        or (number in (2, 11, 13, 16, 22))
    )


def test_tpcds_all_99_queries_pass() -> None:
    catalog, queries = generated("tpcds")
    assert len(queries) == 99
    problems = {}
    for number, sql in queries:
        report = analyze(sql, dialect="duckdb", catalog=catalog)
        errors = [f.rule for f in report.findings if f.severity is Severity.ERROR]
        unsafe = [f.rule for f in report.findings if f.rule in SAFETY_RULES]
        if errors or unsafe or report.decision.value == "reject" or report.estimate is None:
            problems[number] = (errors, unsafe, report.reasons)
    assert problems == {}
