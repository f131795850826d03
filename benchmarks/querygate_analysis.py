"""Query gate: analysis latency over the 99 TPC-DS (and 22 TPC-H) queries next to bare
sqlglot parse + qualify of the same SQL against the same schema, in one run.

The catalogs are read by the DuckDB engine (``DuckDBEngine.catalog``) from sf=0.01 data the
TPC extensions generate into a temporary file. After one warm-up pass, each query is timed
``ROUNDS`` times, the baseline and the analysis back to back (in alternating order from round
to round), so the machine's drift and noise hit both alike; p50/p99 are over all samples, and
the median of the per-sample ratios is printed too. Start-up objects are frozen for the GC
first (``gc.freeze()``), as the web and worker processes do.

The baseline builds sqlglot's ``MappingSchema`` once (the cheapest honest baseline);
``analyze`` builds one per catalog snapshot and dialect and reuses it, as it does in
production. ``Report.normalized_sql`` (a pretty print of the SQL as written) is made on first
use, so it is not in the timed ``analyze`` (the API pays it when it serializes the report).
Goal (issue 7): p50 <= 10 ms and analysis/baseline <= 1.3x.

Needs no database: ``python -c "from benchmarks import querygate_analysis as b; b.run()"``
works too. Whether sqlglot's compiled build (sqlglotc) is installed is printed.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import statistics
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

ROUNDS = 7


def _catalog(dataset: str, directory: str) -> Catalog:
    path = os.path.join(directory, f"{dataset}.duckdb")
    with duckdb.connect(path) as connection:
        tpc.generate(connection, dataset, 0.01)
    return Catalog(tuple(DuckDBEngine(path).catalog()))


def _paired_samples(
    base: Callable[[str], object], ours: Callable[[str], object], queries: list[str]
) -> tuple[list[float], list[float]]:
    """(baseline samples, analysis samples), taken in pairs, one pair per query and round."""
    for sql in queries:
        base(sql)  # warm-up: sqlglot's caches, imports, the catalog's schema
        ours(sql)
    gc.collect()
    gc.freeze()
    base_samples, our_samples = [], []
    try:
        for round_ in range(ROUNDS):
            for sql in queries:
                order = ((base, base_samples), (ours, our_samples))
                for fn, samples in order if round_ % 2 == 0 else reversed(order):
                    start = time.perf_counter()
                    fn(sql)
                    samples.append(time.perf_counter() - start)
    finally:
        gc.unfreeze()
    return base_samples, our_samples


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
    base, ours = _paired_samples(bare, gate, queries)
    b50, b99, g50, g99 = _pct(base, 0.5), _pct(base, 0.99), _pct(ours, 0.5), _pct(ours, 0.99)
    paired = statistics.median(o / b for b, o in zip(base, ours, strict=True))
    print(
        f"querygate_analysis {dataset} ({len(queries)} queries x {ROUNDS}): "
        f"parse+qualify p50 {b50:.2f} ms p99 {b99:.2f} ms | "
        f"analyze p50 {g50:.2f} ms p99 {g99:.2f} ms | "
        f"ratio p50 {g50 / b50:.2f}x p99 {g99 / b99:.2f}x total "
        f"{sum(ours) / sum(base):.2f}x median pair {paired:.2f}x | "
        f"rejected {rejected}, errors {errors}"
    )


def run() -> None:
    print(f"# sqlglot {sqlglot.__version__}, compiled (sqlglotc): {_compiled()}")
    with tempfile.TemporaryDirectory(prefix="karimasu-qg-bench-") as directory:
        for dataset in ("tpcds", "tpch"):
            _measure(dataset, directory)
