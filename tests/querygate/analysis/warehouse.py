"""Test-side catalog building from a real DuckDB with the TPC extensions (not the pure core).

The extensions ship as PyPI wheels (``duckdb-extension-tpch``/``-tpcds``) and load from their
files: DuckDB's own INSTALL would download.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict

import duckdb
import duckdb_extension_tpcds
import duckdb_extension_tpch

from querygate.analysis import Catalog, ColumnStats, TableStats

_QUERIES = {
    "tpch": "SELECT query_nr, query FROM tpch_queries()",
    "tpcds": "SELECT query_nr, query FROM tpcds_queries()",
}
_WIDTHS = {"BIGINT": 8, "INTEGER": 4, "DATE": 4, "DOUBLE": 8, "TIME": 8}


def _connect(dataset: str) -> duckdb.DuckDBPyConnection:
    module = duckdb_extension_tpch if dataset == "tpch" else duckdb_extension_tpcds
    path = os.path.join(
        os.path.dirname(module.__file__ or ""),
        "extensions",
        "v1.5.5",
        f"{dataset}.duckdb_extension",
    )
    con = duckdb.connect()
    con.execute(f"LOAD '{path}'")
    con.execute("CALL dbgen(sf=0.01)" if dataset == "tpch" else "CALL dsdgen(sf=0.01)")
    return con


def _catalog(con: duckdb.DuckDBPyConnection) -> Catalog:
    columns: dict[str, list[tuple[str, str]]] = defaultdict(list)
    query = (
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "ORDER BY table_name, ordinal_position"
    )
    for table, column, data_type in con.execute(query).fetchall():
        columns[table].append((column, data_type))
    tables = []
    for table, cols in columns.items():
        selects = ", ".join(f'approx_count_distinct("{c}")' for c, _ in cols)
        row = con.execute(f'SELECT count(*), {selects} FROM "{table}"').fetchone()  # noqa: S608 - names from information_schema
        assert row is not None
        rows, distincts = int(row[0]), row[1:]
        stats = tuple(
            ColumnStats(c, t, _WIDTHS.get(t, 16), distinct=int(d))
            for (c, t), d in zip(cols, distincts, strict=True)
        )
        tables.append(TableStats(table, stats, rows=rows))
    return Catalog(tuple(tables))


@functools.cache
def generated(dataset: str) -> tuple[Catalog, tuple[tuple[int, str], ...]]:
    """(catalog of the generated sf=0.01 data, the benchmark's queries) for tpch or tpcds."""
    con = _connect(dataset)
    try:
        queries = con.execute(_QUERIES[dataset]).fetchall()
        return _catalog(con), tuple((int(n), str(q)) for n, q in queries)
    finally:
        con.close()
