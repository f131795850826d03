"""Policy: thresholds and allow-lists the analysis judges a query against.

Defaults suit a shared warehouse of a few hundred GB; a warehouse's admin overrides them.

=========================  ===============  ==========================================
field                      default          meaning
=========================  ===============  ==========================================
large_table_rows           1,000,000        a table this long is "large"
large_table_bytes          1 GiB            ... or this big
wide_table_columns         20               ``SELECT *`` on this many columns warns
large_result_rows          100,000          an unbounded result this long warns
warn_bytes_scanned         5 GiB            estimate above: decision at least warn
max_bytes_scanned          100 GiB          estimate above: reject
max_intermediate_rows      1e10             join fan-out above: reject
exploding_join_factor      10               join output / larger input above: warn
max_joins                  20               complexity limits (warn above)
max_subquery_depth         5
max_ctes                   15
max_nodes                  5,000
allow_writes               False            INSERT/UPDATE/DELETE/DDL refused otherwise
suggested_limit            1,000            the LIMIT suggestions propose
allow_lists                {}               per-engine ``EngineAllowList`` overrides
=========================  ===============  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from querygate.analysis import allowlist

GIB = 1024**3


@dataclass(frozen=True)
class EngineAllowList:
    """What one engine may run: function classes (sqlglot names), plain function names,
    table-function names and statement kinds. Empty means "the defaults for the engine"."""

    function_classes: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    table_functions: frozenset[str] = frozenset()
    statements: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    """Thresholds and permissions for one user on one warehouse (see the module table)."""

    large_table_rows: int = 1_000_000
    large_table_bytes: int = GIB
    wide_table_columns: int = 20
    large_result_rows: int = 100_000
    warn_bytes_scanned: int = 5 * GIB
    max_bytes_scanned: int = 100 * GIB
    max_intermediate_rows: int = 10_000_000_000
    exploding_join_factor: float = 10.0
    max_joins: int = 20
    max_subquery_depth: int = 5
    max_ctes: int = 15
    max_nodes: int = 5_000
    allow_writes: bool = False
    suggested_limit: int = 1000
    allow_lists: dict[str, EngineAllowList] = field(default_factory=dict, hash=False)

    def allowed_function_classes(self, engine: str) -> frozenset[str]:
        """sqlglot function class names allowed on ``engine``."""
        custom = self.allow_lists.get(engine)
        if custom and custom.function_classes:
            return custom.function_classes
        return allowlist.known_function_classes()

    def allowed_functions(self, engine: str) -> frozenset[str]:
        """Plain (anonymous to sqlglot) function names allowed on ``engine``, lower case."""
        custom = self.allow_lists.get(engine)
        if custom and custom.functions:
            return custom.functions
        return allowlist.plain_functions(engine)

    def allowed_table_functions(self, engine: str) -> frozenset[str]:
        """Table-function names allowed in FROM on ``engine``, lower case."""
        custom = self.allow_lists.get(engine)
        if custom and custom.table_functions:
            return custom.table_functions
        return allowlist.table_functions(engine)

    def allowed_statements(self, engine: str) -> frozenset[str]:
        """Statement kinds (upper case, e.g. ``SELECT``, ``COPY``) allowed on ``engine``."""
        custom = self.allow_lists.get(engine)
        if custom and custom.statements:
            return custom.statements
        return allowlist.DEFAULT_STATEMENTS
