"""Cost estimate: bytes scanned, result rows and intermediate rows, from the catalog only.

Heuristics (documented here because the report's numbers come from them):

* **Bytes scanned** is the sum over every base-table reference (a self-join counts twice) of
  the bytes of the columns the query reads from it (column pruning, as columnar engines do),
  times the **partition fraction**: when a WHERE or ON conjunct compares the bare partition
  column with constants, the table is assumed to be pruned to that predicate's selectivity; a
  function around the column (``date_trunc('day', ts) = ...``) prunes nothing. A reference
  that reads no column (``COUNT(*)``) is charged its narrowest column.
* **Rows** are estimated bottom-up per scope: a table's rows (1,000 when unknown) times the
  selectivity of its single-table conjuncts (see ``predicates``); an equi-join multiplies both
  sides and divides by the larger NDV of the join keys (a key side therefore keeps the other
  side's rows); a join without an equality multiplies; GROUP BY yields the product of the
  group columns' NDVs (a tenth of the input when one is unknown), an aggregate without GROUP
  BY one row; LIMIT caps; UNION adds.
* **Intermediate rows** is the largest row count any scan or join step produces: the upper
  bound the policy's ``max_intermediate_rows`` is checked against.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from querygate.analysis.catalog import TableStats
from querygate.analysis.context import RuleContext
from querygate.analysis.predicates import (
    NdvLookup,
    compared_column,
    conjuncts,
    join_pairs,
    selectivity,
)
from querygate.analysis.query_shape import is_aggregate

DEFAULT_TABLE_ROWS = 1000
MIB = 1024**2


@dataclass(frozen=True)
class Estimate:
    """The cost estimate of one statement; ``bytes_by_table`` maps ``schema.table`` to
    bytes scanned from it."""

    bytes_scanned: int = 0
    rows: int = 0
    intermediate_rows: int = 0
    cost_class: str = "small"
    bytes_by_table: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class TableRead:
    """One base-table reference: the node, its catalog entry, the scope that reads it and
    the (lower-case) names of the columns read from it."""

    table: exp.Table
    stats: TableStats
    scope: Scope
    columns: set[str] = field(default_factory=set)


def table_reads(context: RuleContext) -> list[TableRead]:
    """Every base-table reference of the qualified tree with the columns read from it
    (computed once per analysis: the partition rule, the estimate and the report share it;
    callers must not change the reads)."""
    if "table_reads" not in context.derived:
        context.derived["table_reads"] = _table_reads(context)
    return cast("list[TableRead]", context.derived["table_reads"])  # stored just above


def _table_reads(context: RuleContext) -> list[TableRead]:
    reads: dict[int, TableRead] = {}
    for scope in context.scopes:
        for _, source in scope.selected_sources.values():
            stats = context.table_stats(source) if isinstance(source, exp.Table) else None
            if stats is not None and isinstance(source, exp.Table):
                reads.setdefault(id(source), TableRead(source, stats, scope))
    for scope in context.scopes:
        ignored = _exists_projection_columns(scope)
        # The reads of this scope's own tables by alias: most columns are found in one step.
        local = {
            alias: reads[id(source)]
            for alias, source in scope.sources.items()
            if isinstance(source, exp.Table) and id(source) in reads
        }
        for column in scope.columns:
            if ignored and id(column) in ignored:
                continue
            read = local.get(column.table)
            if read is None:  # an outer scope's table (a correlated column), or no table
                table = context.base_table(column, scope)
                read = reads.get(id(table)) if table is not None else None
            if read is not None:
                read.columns.add(column.name.lower())
    return list(reads.values())


def _exists_projection_columns(scope: Scope) -> set[int]:
    """Ids of the projected columns of an EXISTS subquery: the engine reads none of them."""
    select = scope.expression
    if not isinstance(select, exp.Select) or not isinstance(select.parent, exp.Exists):
        return set()
    ids = set()
    for projection in select.expressions:
        value = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(value, exp.Column):  # SELECT * expanded: aliased columns, no walk
            ids.add(id(value))
        elif not isinstance(value, exp.Literal):  # SELECT 1: no walk
            ids.update(id(c) for c in value.find_all(exp.Column))
    return ids


def partition_fraction(read: TableRead, context: RuleContext) -> float:
    """The fraction of ``read``'s table left after partition pruning (1.0: none)."""
    partition = {c.lower() for c in read.stats.partition_columns}
    if not partition:
        return 1.0
    fraction = 1.0
    for predicate in scope_conjuncts(read.scope, context):
        sides = compared_column(predicate)
        if sides is None or not isinstance(sides[0], exp.Column):
            continue
        column = sides[0]
        if column.table == read.table.alias_or_name and column.name.lower() in partition:
            fraction *= selectivity(predicate, ndv_lookup(read.scope, context))
    return fraction


def scope_conjuncts(scope: Scope, context: RuleContext | None = None) -> list[exp.Expr]:
    """The conjuncts of a select scope's WHERE and its joins' ON conditions.

    With ``context`` (whose scopes ``scope`` is one of), computed once per scope and analysis;
    callers must not change the list."""
    if context is None:
        return _scope_conjuncts(scope)
    stored = context.derived.setdefault("scope_conjuncts", {})
    cache = cast("dict[int, list[exp.Expr]]", stored)  # only ever stored here
    found = cache.get(id(scope))
    if found is None:
        found = cache[id(scope)] = _scope_conjuncts(scope)
    return found


def _scope_conjuncts(scope: Scope) -> list[exp.Expr]:
    select = scope.expression
    if not isinstance(select, exp.Select):
        return []
    where = select.args.get("where")
    found = conjuncts(where.this) if where is not None else []
    for join in select.args.get("joins") or []:
        found += conjuncts(join.args.get("on"))
    return found


def estimate_bytes_scanned(context: RuleContext) -> dict[str, int]:
    """Bytes scanned per ``schema.table``, after column and partition pruning."""
    by_table: dict[str, int] = {}
    for read in table_reads(context):
        stats = read.stats
        columns = read.columns or {_narrowest_column(stats)}
        raw = sum(stats.column_bytes(name) for name in columns)
        scanned = int(raw * partition_fraction(read, context))
        by_table[stats.qualified_name] = by_table.get(stats.qualified_name, 0) + scanned
    return by_table


def _narrowest_column(stats: TableStats) -> str:
    return min(stats.columns, key=lambda c: stats.column_bytes(c.name)).name.lower()


def ndv_lookup(scope: Scope, context: RuleContext) -> NdvLookup:
    """The NDV of a qualified column read in ``scope`` (None when unknown), answered once per
    (table alias, column) of the scope and analysis: the selectivities, join keys and group
    keys of a scope ask for the same columns again and again."""
    memos = context.ndv_memos
    entry = memos.get(id(scope))
    if entry is None or entry[0] is not scope:
        entry = memos[id(scope)] = (scope, {})
    memo = entry[1]

    def ndv(column: exp.Column) -> int | None:
        key = (column.table, column.name)
        if key in memo:
            return memo[key]
        found = context.column_stats(column, scope)
        value = memo[key] = found[0].ndv(found[1]) if found is not None else None
        return value

    return ndv


def estimate_rows(context: RuleContext) -> tuple[int, int]:
    """(result rows, intermediate rows) of the qualified statement; (0, 0) without scopes."""
    if not context.scopes:
        return 0, 0
    rows, intermediate = scope_rows(context.scopes[-1], context, rows_memo(context))
    return _to_int(rows), _to_int(intermediate)


def rows_memo(context: RuleContext) -> dict[int, tuple[float, float]]:
    """A ``scope_rows`` memo shared by the whole analysis (the rules and the estimate) when
    the scopes can form no cycle (no recursive CTE): a scope's rows then do not depend on
    where the computation started. A fresh memo otherwise, as the recursion guard makes the
    rows of a cycle's scopes depend on the entry point."""
    if context.qualified is None or _has_recursive_cte(context):
        return {}
    memo = context.derived.get("scope_rows_memo")
    if not isinstance(memo, dict):
        memo = {}
        context.derived["scope_rows_memo"] = memo
    return cast("dict[int, tuple[float, float]]", memo)  # only ever stored just above


def _has_recursive_cte(context: RuleContext) -> bool:
    found = context.derived.get("has_recursive_cte")
    if not isinstance(found, bool):
        # Qualification keeps the WITH nodes and never makes one recursive.
        found = any(w.args.get("recursive") for w in context.parsed_nodes(exp.With))
        context.derived["has_recursive_cte"] = found
    return found


def _to_int(value: float) -> int:
    return int(min(value, 1e18)) if math.isfinite(value) else 10**18


def scope_rows(
    scope: Scope, context: RuleContext, memo: dict[int, tuple[float, float]]
) -> tuple[float, float]:
    """(rows, intermediate rows) one scope produces; see the module docstring."""
    if id(scope) in memo:
        return memo[id(scope)]
    memo[id(scope)] = (DEFAULT_TABLE_ROWS, DEFAULT_TABLE_ROWS)  # guards recursive CTEs
    if isinstance(scope.expression, exp.SetOperation) and scope.set_operation_scopes:
        parts = [scope_rows(s, context, memo) for s in scope.set_operation_scopes]
        result = (sum(p[0] for p in parts), max(p[1] for p in parts))
    elif isinstance(scope.expression, exp.Select):
        result = _select_rows(scope, context, memo)
    else:
        result = (DEFAULT_TABLE_ROWS, DEFAULT_TABLE_ROWS)
    memo[id(scope)] = result
    return result


def _source_rows(
    source: exp.Expr | Scope, context: RuleContext, memo: dict[int, tuple[float, float]]
) -> tuple[float, float]:
    if isinstance(source, Scope):
        return scope_rows(source, context, memo)
    if isinstance(source, exp.Table):
        stats = context.table_stats(source)
        rows = float(stats.rows if stats and stats.rows is not None else DEFAULT_TABLE_ROWS)
        return rows, rows
    return DEFAULT_TABLE_ROWS, DEFAULT_TABLE_ROWS


def _select_rows(
    scope: Scope, context: RuleContext, memo: dict[int, tuple[float, float]]
) -> tuple[float, float]:
    select = scope.expression
    ndv = ndv_lookup(scope, context)
    rows_by_alias: dict[str, float] = {}
    intermediate = 0.0
    for alias, (_, source) in scope.selected_sources.items():
        rows, inner = _source_rows(source, context, memo)
        rows_by_alias[alias] = rows
        intermediate = max(intermediate, inner)
    pairs: list[tuple[exp.Column, exp.Column]] = []
    for predicate in scope_conjuncts(scope, context):
        aliases, has_subquery = context.node_facts(predicate)
        if len(aliases) == 1 and not has_subquery:
            (alias,) = aliases
            if alias in rows_by_alias:
                rows_by_alias[alias] *= selectivity(predicate, ndv)
        else:
            pairs += join_pairs(predicate)
    rows, intermediate = _join_rows(select, rows_by_alias, pairs, ndv, intermediate)
    return _shape_rows(select, rows, ndv, context), intermediate


def _join_rows(
    select: exp.Expr,
    rows_by_alias: dict[str, float],
    pairs: list[tuple[exp.Column, exp.Column]],
    ndv: NdvLookup,
    intermediate: float,
) -> tuple[float, float]:
    pending = list(rows_by_alias)
    if not pending:
        return 1.0, intermediate
    # Each equality indexed under both of its sides: (the other side's alias, the other
    # side's column, this side's column).
    edges: dict[str, list[tuple[str, exp.Column, exp.Column]]] = {}
    for a, b in pairs:
        edges.setdefault(a.table, []).append((b.table, b, a))
        edges.setdefault(b.table, []).append((a.table, a, b))

    def keys_to(alias: str) -> list[tuple[exp.Column, exp.Column]]:
        """The equalities joining ``alias`` to what is joined, as (joined side, alias side)."""
        return [(there, here) for other, there, here in edges.get(alias, ()) if other in joined]

    first = pending.pop(0)
    joined = {first}
    rows = rows_by_alias[first]
    kinds = {j.this.alias_or_name: j.args.get("kind") for j in select.args.get("joins") or []}
    while pending:
        # Greedy order, as an optimizer would: a source joined to what is already joined
        # comes before a cross product.
        alias = next((a for a in pending if keys_to(a)), pending[0])
        pending.remove(alias)
        right = rows_by_alias[alias]
        keys = keys_to(alias)
        if str(kinds.get(alias) or "").upper() in ("SEMI", "ANTI"):
            new_rows = rows
        elif keys:
            divisor = max(
                _key_ndv([k[0] for k in keys], rows, ndv),
                _key_ndv([k[1] for k in keys], right, ndv),
            )
            new_rows = rows * right / max(divisor, 1.0)
        else:
            new_rows = rows * right
        rows = new_rows
        joined.add(alias)
        intermediate = max(intermediate, right, rows)
    return rows, max(intermediate, rows)


def _key_ndv(columns: list[exp.Column], side_rows: float, ndv: NdvLookup) -> float:
    product = 1.0
    for column in columns:
        distinct = ndv(column)
        product *= distinct if distinct else side_rows
    return min(product, max(side_rows, 1.0))


def _shape_rows(select: exp.Expr, rows: float, ndv: NdvLookup, context: RuleContext) -> float:
    group = select.args.get("group")
    if group is not None:
        groups = 1.0
        for key in group.expressions:
            distinct = ndv(key) if isinstance(key, exp.Column) else None
            if not distinct:
                groups = max(1.0, rows / 10)
                break
            groups *= distinct
        rows = min(rows, groups)
    elif is_aggregate(select, context):
        rows = 1.0
    limit = select.args.get("limit")
    if limit is not None and isinstance(limit.expression, exp.Literal):
        rows = min(rows, float(limit.expression.name))
    return rows


def cost_class(bytes_scanned: int, intermediate_rows: int, context: RuleContext) -> str:
    """``small``, ``medium``, ``large`` or ``excessive`` by the policy's thresholds."""
    policy = context.policy
    if bytes_scanned > policy.max_bytes_scanned or intermediate_rows > policy.max_intermediate_rows:
        return "excessive"
    if bytes_scanned > policy.warn_bytes_scanned:
        return "large"
    if bytes_scanned > 100 * MIB or intermediate_rows > 10_000_000:
        return "medium"
    return "small"


def estimate(context: RuleContext) -> Estimate:
    """The full estimate of the qualified statement in ``context``."""
    by_table = estimate_bytes_scanned(context)
    rows, intermediate = estimate_rows(context)
    total = sum(by_table.values())
    return Estimate(total, rows, intermediate, cost_class(total, intermediate, context), by_table)
