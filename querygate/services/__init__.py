"""The query gate's one write path, one module per concern.

- ``access``: who may use a warehouse or see, read or stop a query (``access_*`` fetch and
  check in one call; ``can_*``; ``visible_*``): the one home of those rules.
- ``warehouses``: a warehouse's analysis policy, sandbox limits and engine; the statement
  and EXPLAIN the engine is sent.
- ``catalog``: catalog snapshots (refresh from the engine, declared partitioning, the
  analysis ``Catalog``).
- ``analyses``: the analysis of one SQL request for one user (parsed once), EXPLAIN,
  runtime prediction, the analyze audit.
- ``admission``: submit: analyze, decide, budget, audit row first, then run or enqueue.
- ``execution``: claim and run a queued query under its budget; store its result.
- ``enforcement``: cancel and kill, the watchdog, lost queries.
- ``lifecycle``: the one writer of ``Query.status`` (``querygate.states`` is its table).
- ``results``: result sets as Parquet files: write, page, CSV, purge after the retention.
- ``demo``: build the demo DuckDB warehouses from the TPC extensions.
"""
