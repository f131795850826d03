"""Rules: one module each, each a function ``rule(tree, *, context) -> list[Finding]``.

``GATE_RULES`` run on the parsed tree, always (escape hatches and writes must be refused even
when the query does not qualify). The lint rules of a query run on the same tree in two
groups: ``SYNTAX_RULES`` judge the query as written (stars, literal conditions, shapes) and run
before qualification rewrites the tree in place; ``RULES`` need resolved columns and scopes
and run after it. A rule reads the tree only while it runs: its findings carry their position
and text, so they stay true after the rewrite.

============================  ==========  ====================================================
rule id                       severity    meaning
============================  ==========  ====================================================
statement-not-allowed         error       COPY, ATTACH, INSTALL, LOAD, SET, PRAGMA, CALL...
write-not-allowed             error       INSERT/UPDATE/DELETE/MERGE/DDL without write rights
function-not-allowed          error       a function not on the engine's allow-list
table-function-not-allowed    error       a function in FROM that is not a plain generator
file-path-table               error       DuckDB ``FROM 'file.csv'`` / ``FROM 's3://...'``
unbounded-generator           error       generator/builder/counting recursive CTE whose size
                                          argument is not a constant (``range(x)``)
generator-too-large           error       constant bounds over ``max_generated_rows``
value-too-large               error       one value over ``max_bytes_built`` (``repeat``,
                                          ``lpad``, ``printf`` widths, ``string_agg``...,
                                          a DuckDB vector of them); a built sort/group
                                          key kept for every row over ``max_result_bytes``
cartesian-join                warn/error  sources no predicate connects
always-true-join              warn/error  ``ON TRUE``, ``ON 1 = 1``, ``ON a.x = a.x``
exploding-join                warn/error  many-to-many equi-join (fan-out from keys and NDVs)
select-star                   warn        ``SELECT *`` on a wide or large table
unbounded-result              warn        large result without LIMIT or aggregation
order-without-limit           warn        ORDER BY without LIMIT over a large input
order-by-random               warn        ORDER BY random()
distinct-star                 warn        SELECT DISTINCT *
union-distinct                warn        UNION (distinct) over a large table
always-true-where             warn        ``WHERE 1 = 1`` alone, ``OR 1 = 1``, ``x = x``
leading-wildcard-like         warn        ``LIKE '%...'`` on a large table
missing-partition-filter      error       no filter on a table that requires one
unprunable-partition-filter   warn/error  a function around the partition column
unbounded-recursive-cte       error       recursive member without termination, no LIMIT
excessive-complexity          warn        joins, depth, CTEs or nodes over the policy
============================  ==========  ====================================================

``analyze`` adds ``parse-error``, ``multiple-statements``, ``empty-statement``,
``unknown-table``, ``unknown-column`` and ``ambiguous-column`` (all errors).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding
from querygate.analysis.rules.always_true_join import always_true_join
from querygate.analysis.rules.always_true_where import always_true_where
from querygate.analysis.rules.cartesian_join import cartesian_join
from querygate.analysis.rules.complexity import complexity
from querygate.analysis.rules.distinct_star import distinct_star
from querygate.analysis.rules.exploding_join import exploding_join
from querygate.analysis.rules.file_tables import file_tables
from querygate.analysis.rules.functions import functions
from querygate.analysis.rules.generators import aggregate_values, generators
from querygate.analysis.rules.leading_wildcard_like import leading_wildcard_like
from querygate.analysis.rules.order_by_random import order_by_random
from querygate.analysis.rules.order_without_limit import order_without_limit
from querygate.analysis.rules.partition_filter import partition_filter
from querygate.analysis.rules.recursive_cte import recursive_cte
from querygate.analysis.rules.select_star import select_star
from querygate.analysis.rules.statements import statements
from querygate.analysis.rules.unbounded_result import unbounded_result
from querygate.analysis.rules.union_distinct import union_distinct

Rule = Callable[..., list[Finding]]

GATE_RULES: tuple[Rule, ...] = (statements, functions, file_tables, generators)

SYNTAX_RULES: tuple[Rule, ...] = (
    always_true_join,
    select_star,
    order_by_random,
    distinct_star,
    union_distinct,
    always_true_where,
    recursive_cte,
    complexity,
)

RULES: tuple[Rule, ...] = (
    cartesian_join,
    exploding_join,
    unbounded_result,
    order_without_limit,
    leading_wildcard_like,
    partition_filter,
    aggregate_values,
)


def run_rules(rules: tuple[Rule, ...], tree: exp.Expr, context: RuleContext) -> list[Finding]:
    """Every finding of ``rules`` on ``tree``, in rule order."""
    findings: list[Finding] = []
    for rule in rules:
        findings += rule(tree, context=context)
    return findings
