"""Query gate: what the DuckDB sandbox adds to a small inline query, next to the in-process
path it replaced, in one run.

The baseline is the old inline path: open the warehouse file read-only and locked down in
this process, run the statement, fetch the capped rows, close. The sandboxed path is the
production one: ``DuckDBEngine.session().execute`` (fork a child from the zygote, apply the
limits, open, run, fetch, send the rows back). Both run the same small TPC-H queries
(sf=0.01, generated into a temporary file) back to back, in alternating order, ``ROUNDS``
times each after a warm-up; p50/p99 over all samples and the median of the paired
differences are printed. Goal (issue: the gate under hostile input): <= 50 ms added at p50.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import duckdb

from querygate.engines import tpc
from querygate.engines.duckdb import LOCKED_DOWN, DuckDBEngine

ROUNDS = 40
QUERIES = [
    "SELECT n_name, n_regionkey FROM nation WHERE n_regionkey = 1 ORDER BY n_name LIMIT 10001",
    "SELECT o_orderpriority, count(*) FROM orders GROUP BY 1 ORDER BY 1 LIMIT 10001",
    "SELECT c_name, c_acctbal FROM customer WHERE c_acctbal > 9000 LIMIT 10001",
]


def _in_process(path: str, sql: str) -> int:
    connection = duckdb.connect(path, read_only=True, config=dict(LOCKED_DOWN))
    try:
        return len(connection.execute(sql).fetchmany(10_001))
    finally:
        connection.close()


def _sandboxed(engine: DuckDBEngine, sql: str) -> int:
    with engine.session(timeout_s=30) as session:
        return len(session.execute(sql, max_rows=10_000).rows)


def run() -> None:
    directory = tempfile.mkdtemp(prefix="karimasu-sandbox-bench-")
    path = os.path.join(directory, "tpch.duckdb")
    connection = duckdb.connect(path)
    tpc.generate(connection, "tpch", 0.01)
    connection.close()
    engine = DuckDBEngine(path)
    for sql in QUERIES:  # warm-up (starts the zygote)
        assert _sandboxed(engine, sql) == _in_process(path, sql)
    base: list[float] = []
    boxed: list[float] = []
    for round_ in range(ROUNDS):
        for sql in QUERIES:
            order = [("base", _in_process, path), ("boxed", _sandboxed, engine)]
            if round_ % 2:
                order.reverse()
            for name, function, target in order:
                started = time.perf_counter()
                function(target, sql)  # type: ignore[operator]
                (base if name == "base" else boxed).append(time.perf_counter() - started)
    added = [b - a for a, b in zip(base, boxed, strict=True)]

    def ms(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if q < 100 else 0.0

    print(
        f"querygate_sandbox: in-process p50 {statistics.median(base) * 1000:.1f} ms "
        f"p99 {ms(base, 99):.1f} ms; sandboxed p50 {statistics.median(boxed) * 1000:.1f} ms "
        f"p99 {ms(boxed, 99):.1f} ms; added p50 {statistics.median(added) * 1000:.1f} ms "
        f"(goal <= 50 ms), ratio of p50s {statistics.median(boxed) / statistics.median(base):.2f}x "
        f"over {len(base)} paired samples"
    )
