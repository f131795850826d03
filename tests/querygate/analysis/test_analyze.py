"""``analyze``'s per-catalog schema cache and its lazily generated normalized SQL."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import sqlglot
from sqlglot.dialects.dialect import Dialect

from querygate.analysis import Catalog, ColumnStats, Policy, TableStats, analyze
from querygate.analysis.analyze import sqlglot_schema
from querygate.analysis.context import RuleContext

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


def test_the_qualified_tree_shares_no_comment_list_with_the_parsed_one() -> None:
    sql = "/* c1 */ SELECT n_name /* c2 */ FROM nation -- tail"
    dialect = Dialect.get_or_raise("duckdb")
    tokens = dialect.tokenize(sql)
    parsed = dialect.parser().parse(tokens, sql)[0]
    assert parsed is not None
    context = RuleContext(sql, "duckdb", lab_catalog(), Policy(), parsed, tokens)
    second = analyze_module._second_tree(parsed, context)
    assert second == parsed
    assert not [
        a
        for a, b in zip(parsed.walk(), second.walk(), strict=True)
        if a.comments is not None and a.comments is b.comments
    ]
