"""The TPC-H and TPC-DS DuckDB extensions from their PyPI wheels (``duckdb-extension-tpch``,
``duckdb-extension-tpcds``): DuckDB's own ``INSTALL`` downloads, so they are loaded from the
package's files. No Django here: the benchmarks and tests use it too."""

from __future__ import annotations

import importlib
import os

import duckdb

GENERATORS = {"tpch": "dbgen", "tpcds": "dsdgen"}


def extension_path(dataset: str) -> str:
    """The extension file shipped in the dataset's package, for this DuckDB version."""
    module = importlib.import_module(f"duckdb_extension_{dataset}")
    return os.path.join(
        os.path.dirname(module.__file__ or ""),
        "extensions",
        f"v{duckdb.__version__}",
        f"{dataset}.duckdb_extension",
    )


def load(connection: duckdb.DuckDBPyConnection, dataset: str) -> None:
    connection.execute(f"LOAD '{extension_path(dataset)}'")


def generate(connection: duckdb.DuckDBPyConnection, dataset: str, scale: float) -> None:
    """Load the extension and generate the data at ``scale`` into ``connection``."""
    load(connection, dataset)
    connection.execute(f"CALL {GENERATORS[dataset]}(sf={float(scale)})")


def benchmark_queries(dataset: str) -> list[tuple[int, str]]:
    """The dataset's benchmark queries (``tpch_queries()``: 22, ``tpcds_queries()``: 99)."""
    connection = duckdb.connect()
    try:
        load(connection, dataset)
        function = {"tpch": "tpch_queries", "tpcds": "tpcds_queries"}[dataset]
        rows = connection.execute(f"SELECT query_nr, query FROM {function}()").fetchall()  # noqa: S608 - a name from the fixed table above
    finally:
        connection.close()
    return [(int(n), str(q)) for n, q in rows]
