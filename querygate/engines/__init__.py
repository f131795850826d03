"""Warehouse engines behind the ``Engine`` protocol, one module each (duckdb.py, postgres.py,
spark.py).

``engine_for(kind, connection)`` builds one; the rest of the app only sees the protocol.
"""

from __future__ import annotations

from typing import Any

from querygate.engines.base import Engine, ResultSet, Session


def engine_for(kind: str, connection: str, *, limits: Any = None) -> Engine:
    """The engine of ``kind`` (``duckdb``, ``postgres`` or ``spark``) over ``connection``, under
    ``limits`` (a ``sandbox.Limits``; its defaults when None)."""
    from querygate.engines.sandbox import DEFAULT_LIMITS

    limits = limits or DEFAULT_LIMITS
    if kind == "duckdb":
        from querygate.engines.duckdb import DuckDBEngine

        return DuckDBEngine(connection, limits)
    if kind == "datamart":  # DuckDB views over the datasets of one team (pipelines.services.mart)
        from pathlib import Path

        from querygate.engines.duckdb import DuckDBEngine

        return DuckDBEngine(connection, limits, read_directory=str(Path(connection).parent))
    if kind == "postgres":
        from querygate.engines.postgres import PostgresEngine

        return PostgresEngine(connection, limits)
    if kind == "spark":
        from querygate.engines.spark import SparkEngine

        return SparkEngine(connection, limits)
    raise ValueError(f"unknown engine {kind!r}")


__all__ = ["Engine", "ResultSet", "Session", "engine_for"]
