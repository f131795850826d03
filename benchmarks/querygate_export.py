"""Query gate: full-export throughput next to the capped result path, in one run.

The capped path is what every query does: ``session.execute`` fetches at most the row cap
(10,000 rows) as Python values from the DuckDB sandbox child, then ``results.write_result``
stages them as JSON lines and writes the Parquet file. The export path is what a query with
``export`` adds past the cap: ``session.export`` streams the whole result from DuckDB's
Arrow reader into a Parquet file in the child. Both read the same rows (``lineitem`` of
TPC-H sf=0.1, ~600,000 rows, seven columns of five types); ``ROUNDS`` alternating rounds;
rows per second (median) and the ratio export / capped are printed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from querygate.engines import tpc
from querygate.engines.duckdb import DuckDBEngine

ROUNDS = 5
CAP = 10_000
SQL = (
    "SELECT l_orderkey, l_partkey, l_quantity, l_extendedprice, l_shipdate, l_shipmode, "
    "l_comment FROM lineitem"
)


def _capped(engine: DuckDBEngine, directory: Path) -> float:
    from django.test import override_settings

    from querygate.services import results

    started = time.perf_counter()
    with engine.session(timeout_s=120) as session:
        result = session.execute(f"{SQL} LIMIT {CAP + 1}", max_rows=CAP)
    with override_settings(QUERYGATE_RESULTS_DIR=directory):
        results.write_result(1, result)
    elapsed = time.perf_counter() - started
    return len(result.rows) / elapsed


def _export(engine: DuckDBEngine, directory: Path) -> tuple[float, int]:
    started = time.perf_counter()
    with engine.session(timeout_s=120) as session:
        stats = session.export(
            SQL,
            path=str(directory / "export.parquet"),
            max_rows=10_000_000,
            max_bytes=2**31,
            timeout_s=120,
        )
    elapsed = time.perf_counter() - started
    return stats.rows / elapsed, stats.rows


def run() -> None:
    directory = Path(tempfile.mkdtemp(prefix="karimasu-export-bench-"))
    path = os.path.join(directory, "tpch.duckdb")
    connection = duckdb.connect(path)
    tpc.generate(connection, "tpch", 0.1)
    connection.close()
    engine = DuckDBEngine(path)
    _capped(engine, directory)  # warm-up (starts the zygote)
    capped: list[float] = []
    exported: list[float] = []
    rows = 0
    for round_ in range(ROUNDS):
        order = ["capped", "export"] if round_ % 2 == 0 else ["export", "capped"]
        for name in order:
            if name == "capped":
                capped.append(_capped(engine, directory))
            else:
                rate, rows = _export(engine, directory)
                exported.append(rate)
    base, full = statistics.median(capped), statistics.median(exported)
    print(
        f"querygate_export: capped path (execute {CAP:,} rows + write_result) "
        f"{base:,.0f} rows/s; full export ({rows:,} rows, Arrow batches to Parquet) "
        f"{full:,.0f} rows/s; ratio {full / base:.1f}x over {ROUNDS} rounds"
    )
