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
max_generated_rows         10,000,000       rows (or list elements) one generator makes
max_bytes_built            256 MiB          bytes one expression builds (repeat, lpad, list)
max_result_bytes           10 GiB           estimated result (rows x row width) above: reject
assumed_recursion_depth    100              iterations assumed for a data-bound recursive CTE
max_joins                  20               complexity limits (warn above)
max_subquery_depth         5
max_ctes                   15
max_nodes                  5,000
allow_writes               False            INSERT/UPDATE/DELETE/DDL refused otherwise
suggested_limit            1,000            the LIMIT suggestions propose
allow_lists                {}               per-engine ``EngineAllowList`` overrides
severity_overrides         {}               lint rule id -> info, warn, error or off
=========================  ===============  ==========================================

``severity_overrides`` re-grades the findings of the lint rules (``LINT_RULES``: cost and
style judgements an admin may weigh differently, e.g. ``{"select-star": "error"}``, or
``"off"`` to drop a rule's findings). The safety findings (``SAFETY_RULES``: parse errors,
unknown tables and columns, statements, functions and file paths off the allow-lists, and
writes) cannot be overridden: naming one, an unknown rule id or an unknown severity raises
``ValueError`` when the policy is built. Overrides are applied before the decision, so a
warning raised to ``error`` rejects and an error lowered to ``warn`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from querygate.analysis import allowlist

GIB = 1024**3

#: Rule ids whose severity a policy may override (the rules run on the qualified tree).
LINT_RULES = frozenset(
    {
        "cartesian-join",
        "always-true-join",
        "exploding-join",
        "select-star",
        "unbounded-result",
        "order-without-limit",
        "order-by-random",
        "distinct-star",
        "union-distinct",
        "always-true-where",
        "leading-wildcard-like",
        "missing-partition-filter",
        "unprunable-partition-filter",
        "unbounded-recursive-cte",
        "excessive-complexity",
    }
)

#: Rule ids that guard the warehouse or the analysis itself: never overridable.
SAFETY_RULES = frozenset(
    {
        "parse-error",
        "multiple-statements",
        "empty-statement",
        "unknown-table",
        "unknown-column",
        "ambiguous-column",
        "statement-not-allowed",
        "write-not-allowed",
        "function-not-allowed",
        "table-function-not-allowed",
        "file-path-table",
        "unbounded-generator",
        "generator-too-large",
        "value-too-large",
    }
)

#: What a severity override may say: a ``Severity`` value, or ``off`` to drop the finding.
OVERRIDE_SEVERITIES = ("info", "warn", "error", "off")


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
    max_generated_rows: int = 10_000_000
    max_bytes_built: int = 256 * 1024**2
    max_result_bytes: int = 10 * GIB
    assumed_recursion_depth: int = 100
    max_joins: int = 20
    max_subquery_depth: int = 5
    max_ctes: int = 15
    max_nodes: int = 5_000
    allow_writes: bool = False
    suggested_limit: int = 1000
    allow_lists: dict[str, EngineAllowList] = field(default_factory=dict, hash=False)
    severity_overrides: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity_overrides", _checked_overrides(self.severity_overrides))

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


def _checked_overrides(overrides: Mapping[str, str]) -> Mapping[str, str]:
    """``overrides`` checked, as a new dict with lower-cased severities; ValueError naming
    the first bad rule id."""
    if not isinstance(overrides, Mapping):
        raise ValueError(
            f"severity_overrides must map rule ids to severities, not {type(overrides).__name__}"
        )
    checked: dict[str, str] = {}
    for rule, severity in overrides.items():
        if rule in SAFETY_RULES:
            raise ValueError(
                f"severity_overrides: {rule} is a safety finding and cannot be overridden."
            )
        if rule not in LINT_RULES:
            raise ValueError(
                f"severity_overrides: unknown rule id {rule!r}; "
                f"overridable rules are {', '.join(sorted(LINT_RULES))}."
            )
        value = severity.lower() if isinstance(severity, str) else severity
        if value not in OVERRIDE_SEVERITIES:
            raise ValueError(
                f"severity_overrides: {rule} has severity {severity!r}; "
                f"use one of {', '.join(OVERRIDE_SEVERITIES)}."
            )
        checked[rule] = value
    return checked  # a plain dict: policies are pickled and asdict()-ed by callers
