"""``analyze``'s per-catalog schema cache and its lazily generated normalized SQL."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import sqlglot
from sqlglot.parser import Parser

from querygate.analysis import Catalog, ColumnStats, TableStats, analyze
from querygate.analysis.analyze import sqlglot_schema

from .catalogs import lab_catalog

# The module, not the function ``querygate.analysis.analyze`` re-exports under its name.
analyze_module = importlib.import_module("querygate.analysis.analyze")


def _catalog(*columns: str) -> Catalog:
    return Catalog((TableStats("t", tuple(ColumnStats(c, "INT") for c in columns), rows=10),))


def test_the_schema_is_built_once_per_catalog_and_dialect() -> None:
    catalog = _catalog("a")
    assert sqlglot_schema(catalog, "duckdb") is sqlglot_schema(catalog, "duckdb")
    assert sqlglot_schema(catalog, "postgres") is not sqlglot_schema(catalog, "duckdb")
    assert sqlglot_schema(_catalog("a"), "duckdb") is not sqlglot_schema(catalog, "duckdb")


@pytest.mark.parametrize(
    ("change", "want_rules_after"),
    [
        pytest.param(
            lambda c: _catalog("a", "b"), [], id="a refreshed catalog with the new column"
        ),
        pytest.param(
            lambda c: dataclasses.replace(
                c, tables=(dataclasses.replace(c.tables[0], columns=(ColumnStats("b"),)),)
            ),
            [],
            id="a catalog replaced field by field",
        ),
        pytest.param(lambda c: _catalog("a"), ["unknown-column"], id="an equal new catalog"),
    ],
)
def test_a_changed_catalog_is_not_served_a_stale_schema(
    change: object, want_rules_after: list[str]
) -> None:
    before = _catalog("a")
    sql = "SELECT b FROM t"
    assert analyze(sql, dialect="duckdb", catalog=before).rule_ids() == ["unknown-column"]
    after = change(before)  # type: ignore[operator]
    assert analyze(sql, dialect="duckdb", catalog=after).rule_ids() == want_rules_after
    # ... and the old snapshot keeps answering from its own schema.
    assert analyze(sql, dialect="duckdb", catalog=before).rule_ids() == ["unknown-column"]


def test_sqlglots_lookup_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analyze_module, "_MAX_CACHED_LOOKUPS", 3)
    catalog = lab_catalog()
    for alias in "abcdefgh":
        sql = f"SELECT {alias}.n_name FROM nation AS {alias}"  # noqa: S608 - analyzed, never run
        assert analyze(sql, dialect="duckdb", catalog=catalog).rule_ids() == []
    schema = sqlglot_schema(catalog, "duckdb")
    assert len(schema._find_cache) + len(schema._normalized_table_cache) <= 3 + 2


def test_normalized_sql_is_generated_on_first_use_and_unchanged_by_it() -> None:
    report = analyze("select a from t where a=1", dialect="duckdb", catalog=_catalog("a"))
    assert "normalized_sql" not in report.__dict__
    first = report.to_dict()
    assert first["normalized_sql"] == "SELECT\n  a\nFROM t\nWHERE\n  a = 1"
    assert report.to_dict() == first


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("/* owner: bob */ SELECT n_name FROM nation", id="comment before SELECT"),
        pytest.param("SELECT n_name /* the name */ FROM nation -- tail", id="inline and trailing"),
        pytest.param(
            "/* c */ SELECT * FROM (/* inner */ SELECT n_name FROM nation) AS s",
            id="comments in a subquery whose star qualify expands",
        ),
    ],
)
def test_qualifying_leaves_the_comments_of_the_sql_as_written(sql: str) -> None:
    report = analyze(sql, dialect="duckdb", catalog=lab_catalog())
    want = sqlglot.parse_one(sql, read="duckdb").sql(dialect="duckdb", pretty=True)
    assert report.normalized_sql == want


def test_the_sql_is_parsed_once_and_findings_point_at_the_query_as_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parses: list[str] = []
    parse = Parser.parse

    def counting(self: Parser, raw_tokens: list[object], sql: str | None = None) -> object:
        parses.append(sql or "")
        return parse(self, raw_tokens, sql)

    monkeypatch.setattr(Parser, "parse", counting)
    sql = "SELECT *\nFROM lineitem AS l, orders AS o\nWHERE 1 = 1"
    report = analyze(sql, dialect="duckdb", catalog=lab_catalog())
    assert parses == [sql]  # one parse: qualification rewrites that tree in place
    where = {f.rule: (f.line, f.column) for f in report.findings}
    # select-star (a syntax rule) saw the star that qualification then expanded;
    # cartesian-join (a rule on the qualified tree) still points into the SQL as written.
    assert where["select-star"] == (1, 8)
    assert where["cartesian-join"] == (2, 21)
    assert where["always-true-where"] == (3, 7)
    assert report.normalized_sql.startswith("SELECT\n  *\nFROM lineitem")
