"""Warehouse engines behind the ``Engine`` protocol, one module each (duckdb.py, postgres.py).

``engine_for(kind, connection)`` builds one; the rest of the app only sees the protocol.
"""

from __future__ import annotations

from querygate.engines.base import Engine, ResultSet, Session


def engine_for(kind: str, connection: str) -> Engine:
    """The engine of ``kind`` (``duckdb`` or ``postgres``) over ``connection``."""
    if kind == "duckdb":
        from querygate.engines.duckdb import DuckDBEngine

        return DuckDBEngine(connection)
    if kind == "postgres":
        from querygate.engines.postgres import PostgresEngine

        return PostgresEngine(connection)
    raise ValueError(f"unknown engine {kind!r}")


__all__ = ["Engine", "ResultSet", "Session", "engine_for"]
