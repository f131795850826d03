"""The query gate's one write path.

- ``warehouses``: who may use a warehouse, with which policy; the catalog snapshot
  (refresh from the engine, turn into ``querygate.analysis.Catalog``); analysis for a user.
- ``queries``: submit (analyze, decide, audit row first), execute under a budget, cancel
  and kill, the watchdog.
- ``results``: result sets as Parquet files: write, page, CSV, purge after the retention.
- ``demo``: build the demo DuckDB warehouses from the TPC extensions.
"""
