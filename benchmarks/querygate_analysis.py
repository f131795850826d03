"""Query gate: analysis latency over the 99 TPC-DS (and 22 TPC-H) queries next to bare
sqlglot parse + qualify of the same SQL against the same schema, in one run.

The catalogs are read by the DuckDB engine (``DuckDBEngine.catalog``) from sf=0.01 data the
TPC extensions generate into a temporary file. Each query is timed ``ROUNDS`` times after
one warm-up; p50/p99 are over all samples. The baseline builds sqlglot's ``MappingSchema``
once (the cheapest honest baseline); ``analyze`` builds one per catalog snapshot and dialect
and reuses it, as it does in production. ``Report.normalized_sql`` is generated on first
use, so it is not in the timed ``analyze`` (the API pays it when it serializes the report).
Goal (issue 7): p50 <= 10 ms and analysis/baseline <= 1.3x.

Needs no database: ``python -c "from benchmarks import querygate_analysis as b; b.run()"``
works too. Whether sqlglot's compiled build (sqlglotc) is installed is printed.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
import time
from collections.abc import Callable

import duckdb
import sqlglot
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from querygate.analysis import Catalog, analyze
from querygate.engines import tpc
from querygate.engines.duckdb import DuckDBEngine

ROUNDS = 5


def _catalog(dataset: str, directory: str) -> Catalog:
    path = os.path.join(directory, f"{dataset}.duckdb")
    with duckdb.connect(path) as connection:
        tpc.generate(connection, dataset, 0.01)
    return Catalog(tuple(DuckDBEngine(path).catalog()))


def _samples(fn: Callable[[str], object], queries: list[str]) -> list[float]:
    for sql in queries:
        fn(sql)  # warm-up: sqlglot's caches, imports
    samples = []
    for _ in range(ROUNDS):
        for sql in queries:
            start = time.perf_counter()
            fn(sql)
            samples.append(time.perf_counter() - start)
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _compiled() -> bool:
    """True when sqlglot's mypyc build (``pip install "sqlglot[c]"``) is installed."""
    try:
        importlib.metadata.distribution("sqlglotc")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _measure(dataset: str, directory: str) -> None:
    catalog = _catalog(dataset, directory)
    queries = [sql for _, sql in tpc.benchmark_queries(dataset)]
    schema = MappingSchema(dict(catalog.sqlglot_schema()), dialect="duckdb")

    def bare(sql: str) -> object:
        return qualify(
            sqlglot.parse_one(sql, read="duckdb"),
            schema=schema,
            dialect="duckdb",
            db="main",
            quote_identifiers=False,
        )

    def gate(sql: str) -> object:
        return analyze(sql, dialect="duckdb", catalog=catalog)

    decisions = [analyze(sql, dialect="duckdb", catalog=catalog) for sql in queries]
    rejected = sum(r.decision == "reject" for r in decisions)
    errors = sum(r.error is not None for r in decisions)
    base, ours = _samples(bare, queries), _samples(gate, queries)
    b50, b99, g50, g99 = _pct(base, 0.5), _pct(base, 0.99), _pct(ours, 0.5), _pct(ours, 0.99)
    print(
        f"querygate_analysis {dataset} ({len(queries)} queries x {ROUNDS}): "
        f"parse+qualify p50 {b50:.2f} ms p99 {b99:.2f} ms | "
        f"analyze p50 {g50:.2f} ms p99 {g99:.2f} ms | "
        f"ratio p50 {g50 / b50:.2f}x p99 {g99 / b99:.2f}x total "
        f"{sum(ours) / sum(base):.2f}x | rejected {rejected}, errors {errors}"
    )


def run() -> None:
    print(f"# sqlglot {sqlglot.__version__}, compiled (sqlglotc): {_compiled()}")
    with tempfile.TemporaryDirectory(prefix="karimasu-qg-bench-") as directory:
        for dataset in ("tpcds", "tpch"):
            _measure(dataset, directory)
