"""Warehouse engines behind the Engine protocol, one module each (duckdb.py, postgres.py)."""
