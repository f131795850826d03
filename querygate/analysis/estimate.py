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
* **Intermediate rows** is the largest row count any scan or join step produces, in **any**
  scope: CTEs, derived tables, UNION branches and subqueries anywhere (SELECT list, WHERE,
  HAVING, ON, EXISTS / IN, LATERAL), so wrapping a join cannot hide it. A correlated subquery
  is estimated as the join the engine decorrelates it into: its rows joined to the rows of the
  outer sources it names, on the correlated equalities (without one, every pair). The upper
  bound the policy's ``max_intermediate_rows`` is checked against.
* **Generators** are sources with known rows (``builders.generator_count``; an unbounded one,
  which the ``generators`` rule refuses, counts as ``max_generated_rows``); ``VALUES`` has its
  row count, ``UNNEST`` of a literal or generated list its length; a set-returning function
  in the SELECT list (PostgreSQL ``generate_series``, DuckDB ``unnest``) multiplies the rows.
  A recursive CTE makes its anchor's rows plus its recursive member's rows times the
  counter's constant bound (``builders.recursion_rows``), or times the policy's
  ``assumed_recursion_depth`` when it walks data.
* **Generated rows** adds up what every generator makes; **bytes built** is the largest value
  one expression builds: a builder's size (``builders.built_bytes``), or an aggregate that
  builds a value of its rows (``string_agg``, ``list``, ``array_agg``, ``json_agg``...): its
  input rows per group times its argument's width.
* **Result bytes** is the result rows times the row width: per projected column its catalog
  average width, a literal's length, a built value's size, 8 bytes otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from querygate.analysis.builders import (
    AGGREGATE_BUILDER_CLASSES,
    ANONYMOUS_AGGREGATE_BUILDERS,
    ELEMENT_BYTES,
    GENERATOR_CLASSES,
    constant,
    generator_count,
    list_length,
    recursion_rows,
    value_bytes,
)
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
    #: Result rows times the row width (what the engine returns, before any row cap).
    result_bytes: int = 0
    #: Rows and list elements all generators make (``range``, ``generate_series``...).
    generated_rows: int = 0
    #: The largest value one expression builds (``repeat``, ``lpad``, ``string_agg``...).
    bytes_built: int = 0

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
        if found is not None:
            value = found[0].ndv(found[1])
        else:
            value = _derived_ndv(column, scope, context)
        memo[key] = value
        return value

    return ndv


def _derived_ndv(column: exp.Column, scope: Scope, context: RuleContext) -> int | None:
    """The NDV of a column read from a CTE or derived table that passes a column through
    (``SELECT l_quantity AS q ...``): that column's NDV in its own scope, at most the rows
    the CTE makes; None otherwise. Without it a join on a CTE's columns looked like a join
    on keys, and wrapping a many-to-many join's sides in CTEs hid its fan-out."""
    source = _column_source(column, scope)
    if not isinstance(source, Scope) or not isinstance(source.expression, exp.Select):
        return None
    name = column.name.lower()
    for projection in source.expression.expressions:
        if projection.alias_or_name.lower() != name:
            continue
        value = projection.unalias()
        if not isinstance(value, exp.Column):
            return None
        inner = ndv_lookup(source, context)(value)
        if inner is None:
            return None
        rows, _ = scope_rows(source, context, rows_memo(context))
        return int(max(min(float(inner), rows), 1.0))
    return None


def estimate_rows(context: RuleContext) -> tuple[int, int]:
    """(result rows, intermediate rows) of the qualified statement; (0, 0) without scopes.

    The intermediate rows are the largest of every scope's, so a join wrapped in a CTE or a
    subquery anywhere counts as it would unwrapped (computed once per analysis)."""
    if not context.scopes:
        return 0, 0
    found = context.derived.get("estimate_rows")
    if isinstance(found, tuple):
        return cast("tuple[int, int]", found)  # only ever stored just below
    memo = rows_memo(context)
    rows, intermediate = scope_rows(context.scopes[-1], context, memo)
    for scope in context.scopes[:-1]:
        intermediate = max(intermediate, scope_rows(scope, context, memo)[1])
    result = _to_int(rows), _to_int(intermediate)
    context.derived["estimate_rows"] = result
    return result


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
    expression = scope.expression
    if isinstance(expression, exp.SetOperation) and scope.set_operation_scopes:
        recursive = _recursive_cte(expression)
        if recursive is not None:
            result = _recursive_rows(scope, recursive, context, memo)
        else:
            parts = [scope_rows(s, context, memo) for s in scope.set_operation_scopes]
            result = (sum(p[0] for p in parts), max(p[1] for p in parts))
    elif isinstance(expression, exp.Select):
        result = _select_rows(scope, context, memo)
    elif isinstance(expression, exp.Values):
        count = float(len(expression.expressions))
        result = (count, count)
    elif isinstance(expression, exp.Unnest):
        lengths = [list_length(e) for e in expression.expressions]
        known = [n for n in lengths if n is not None]
        count = max(known) if known and len(known) == len(lengths) else DEFAULT_TABLE_ROWS
        result = (count, count)
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
        if isinstance(source.this, GENERATOR_CLASSES):
            count = generator_count(source.this)
            generated = float(context.policy.max_generated_rows) if count is None else count
            return generated, generated
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
    if scope.external_columns:
        correlated = _correlated_rows(scope, rows, rows_by_alias, context, memo)
        intermediate = max(intermediate, correlated)
    rows *= _set_returning_factor(select, context)
    intermediate = max(intermediate, rows)
    input_rows(context)[id(scope)] = (scope, rows)
    return _shape_rows(select, rows, ndv, context), intermediate


def input_rows(context: RuleContext) -> dict[int, tuple[Scope, float]]:
    """Per select scope (by id, with the scope to check the id): its rows after joins and
    filters, before GROUP BY, aggregation and LIMIT (what its aggregates read)."""
    stored = context.derived.setdefault("input_rows", {})
    return cast("dict[int, tuple[Scope, float]]", stored)  # only ever stored here


def _correlated_rows(
    scope: Scope,
    rows: float,
    rows_by_alias: dict[str, float],
    context: RuleContext,
    memo: dict[int, tuple[float, float]],
) -> float:
    """Rows of the join a correlated subquery is decorrelated into: its ``rows`` joined with
    each outer source it names, on the correlated equalities (NDVs as in ``_join_rows``);
    without an equality, every pair."""
    ndv = ndv_lookup(scope, context)
    outer: dict[str, list[tuple[exp.Column, exp.Column]]] = {}
    for predicate in scope_conjuncts(scope, context):
        aliases, _ = context.node_facts(predicate)
        names = [a for a in aliases if a not in rows_by_alias]
        for alias in names:
            outer.setdefault(alias, [])
        for a, b in join_pairs(predicate):
            inner, there = (a, b) if a.table in rows_by_alias else (b, a)
            if inner.table in rows_by_alias and there.table not in rows_by_alias:
                outer.setdefault(there.table, []).append((there, inner))
    for column in scope.external_columns:
        outer.setdefault(column.table, [])
    joined = rows
    for alias, keys in outer.items():
        there_rows = _outer_source_rows(scope, alias, context, memo)
        if there_rows is None:
            continue
        if keys:
            divisor = max(
                _key_ndv([k[0] for k in keys], there_rows, ndv),
                _key_ndv([k[1] for k in keys], rows, ndv),
            )
            joined = max(joined, there_rows * rows / max(divisor, 1.0))
        else:
            joined = max(joined, there_rows * rows)
    return joined


def _outer_source_rows(
    scope: Scope, alias: str, context: RuleContext, memo: dict[int, tuple[float, float]]
) -> float | None:
    current = scope.parent
    while current is not None:
        source = current.sources.get(alias)
        if source is not None:
            return _source_rows(source, context, memo)[0]
        current = current.parent
    return None


def _set_returning_factor(select: exp.Expr, context: RuleContext) -> float:
    """How many rows each input row becomes through the set-returning functions of the
    SELECT list (PostgreSQL ``generate_series``, DuckDB ``unnest``); 1.0 without any."""
    if not _has_set_returning(context):
        return 1.0
    factor = 1.0
    for projection in select.expressions:
        value = projection.unalias()
        if isinstance(value, exp.ExplodingGenerateSeries):
            count = generator_count(value)
        elif isinstance(value, (exp.Explode, exp.Unnest)):
            inner = value.expressions if isinstance(value, exp.Unnest) else [value.this]
            count = max([list_length(e) or DEFAULT_TABLE_ROWS for e in inner] or [1.0])
        else:
            continue
        if count is None:
            count = float(context.policy.max_generated_rows)
        factor = max(factor, count)  # several in one list are zipped, not multiplied
    return factor


_SET_RETURNING: tuple[type[exp.Expr], ...] = (exp.ExplodingGenerateSeries, exp.Explode, exp.Unnest)


def _has_set_returning(context: RuleContext) -> bool:
    found = context.derived.get("has_set_returning")
    if not isinstance(found, bool):
        found = bool(context.parsed_nodes_of(_SET_RETURNING))
        context.derived["has_set_returning"] = found
    return found


def _recursive_cte(expression: exp.Expr) -> exp.CTE | None:
    """The CTE whose body ``expression`` is, when that CTE is recursive (refers to itself)."""
    cte = expression.parent
    if not isinstance(cte, exp.CTE) or not isinstance(cte.parent, exp.With):
        return None
    if not cte.parent.args.get("recursive"):
        return None
    name = cte.alias_or_name.lower()
    member = expression.expression
    if not any(t.name.lower() == name and not t.db for t in member.find_all(exp.Table)):
        return None
    return cte


def _recursive_rows(
    scope: Scope, cte: exp.CTE, context: RuleContext, memo: dict[int, tuple[float, float]]
) -> tuple[float, float]:
    """A recursive CTE: the anchor's rows, plus the member's rows (reading the anchor's rows
    as the CTE's) times the counter's bound or the policy's ``assumed_recursion_depth``."""
    parts = scope.set_operation_scopes
    anchor_rows, anchor_inner = scope_rows(parts[0], context, memo)
    memo[id(scope)] = (anchor_rows, anchor_inner)  # what the member reads of the CTE
    members = [scope_rows(s, context, memo) for s in parts[1:]]
    counter, per_anchor, _ = recursion_rows(cte)
    if counter and per_anchor is not None:
        rows = anchor_rows * max(per_anchor, 1.0)
    else:  # data-bound, or a counter without a bound (which the generators rule refuses)
        depth = float(context.policy.assumed_recursion_depth)
        rows = anchor_rows + sum(m[0] for m in members) * depth
    inner = max([anchor_inner, rows, *(m[1] for m in members)])
    return rows, inner


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
    built = built_values(context)
    return Estimate(
        total,
        rows,
        intermediate,
        cost_class(total, intermediate, context),
        by_table,
        result_bytes=_to_int(rows * result_row_width(context)),
        generated_rows=_to_int(built.generated_rows),
        bytes_built=_to_int(built.bytes_built),
    )


@dataclass
class BuiltValues:
    """What the generators and builders of one statement make: rows (and list elements)
    all generators make, and the largest value one expression builds, in bytes. Filled by
    the ``generators`` rules (``rules/generators.py``)."""

    generated_rows: float = 0.0
    bytes_built: float = 0.0
    #: Bytes per value of each aggregate builder, by node id (with the node to check it).
    aggregates: dict[int, tuple[exp.Expr, float]] = field(default_factory=dict)
    #: The scalar builders and combined values the gate rule sized (within the limits), by
    #: node id: (the node, its bytes with unknown widths at ``UNKNOWN_VALUE_BYTES``).
    scalars: dict[int, tuple[exp.Expr, float]] = field(default_factory=dict)


def built_values(context: RuleContext) -> BuiltValues:
    """The statement's ``BuiltValues`` (made empty on first use)."""
    found = context.derived.get("built_values")
    if not isinstance(found, BuiltValues):
        found = BuiltValues()
        context.derived["built_values"] = found
    return found


def column_width(
    scope: Scope, context: RuleContext, depth: int = 0
) -> Callable[[exp.Column], float | None]:
    """The width of a qualified column read in ``scope``: its catalog average width, 8 bytes
    for a generator's column, the size of the projection it names in a CTE or derived table
    (``repeat('x', 1000) AS x`` is 1,000 bytes wide); None when unknown."""

    def width(column: exp.Column) -> float | None:
        found = context.column_stats(column, scope)
        if found is not None:
            stats = found[0].column(found[1])
            return float(stats.avg_width) if stats is not None else None
        source = _column_source(column, scope)
        if isinstance(source, Scope):
            return _projection_bytes(source, column.name.lower(), context, depth + 1)
        generated = isinstance(source, exp.Table) and isinstance(source.this, GENERATOR_CLASSES)
        return float(ELEMENT_BYTES) if generated else None

    return width


def _projection_bytes(scope: Scope, name: str, context: RuleContext, depth: int) -> float | None:
    """Bytes of the projection ``name`` of a CTE or derived table (the largest of a UNION's
    branches), looked through up to four levels; None when unknown."""
    if depth > 4:
        return None
    if isinstance(scope.expression, exp.SetOperation) and scope.set_operation_scopes:
        sizes = [_projection_bytes(s, name, context, depth + 1) for s in scope.set_operation_scopes]
        known = [size for size in sizes if size is not None]
        return max(known) if known else None
    select = scope.expression
    if not isinstance(select, exp.Select):
        return None
    for projection in select.expressions:
        if projection.alias_or_name.lower() == name:
            value = projection.unalias()
            return value_bytes(value, context.engine, column_width(scope, context, depth))
    return None


def _column_source(column: exp.Column, scope: Scope) -> exp.Expr | Scope | None:
    current: Scope | None = scope
    while current is not None:
        source = current.sources.get(column.table)
        if source is not None:
            return source
        current = current.parent
    return None


def aggregate_builders(context: RuleContext) -> list[tuple[exp.Expr, float, float]]:
    """(node, bytes of the value it builds per group) for every aggregate that builds one
    value of its rows (``string_agg``, ``list``, ``array_agg``, ``json_agg``...): the rows
    its SELECT reads per group (all of them in a window) times its argument's width; and
    the rows it is built for at once: 1, or in a window (a value per row) the rows of its
    SELECT."""
    names = ANONYMOUS_AGGREGATE_BUILDERS.get(context.engine, frozenset())
    kinds = (*AGGREGATE_BUILDER_CLASSES, exp.Anonymous, exp.AnonymousAggFunc)
    nodes = [
        n
        for n in context.parsed_nodes_of(kinds)
        if not isinstance(n, (exp.Anonymous, exp.AnonymousAggFunc)) or n.name.lower() in names
    ]
    if not nodes or not context.scopes:
        return []
    estimate_rows(context)  # fills every select scope's input rows
    by_select = {id(s.expression): s for s in context.scopes}
    inputs = input_rows(context)
    memo = rows_memo(context)
    sized: list[tuple[exp.Expr, float, float]] = []
    for node in nodes:
        select = node.parent
        window: exp.Window | None = None
        while select is not None and not isinstance(select, exp.Select):
            if isinstance(select, exp.Window):
                window = select
            select = select.parent
        scope = by_select.get(id(select)) if select is not None else None
        if scope is None:
            continue
        entry = inputs.get(id(scope))
        input_count = entry[1] if entry is not None and entry[0] is scope else DEFAULT_TABLE_ROWS
        rows = input_count
        if window is not None:
            rows = min(rows, _frame_rows(window) or rows)
        elif scope.expression.args.get("group") is not None:
            rows /= max(scope_rows(scope, context, memo)[0], 1.0)
        args = [node.this] if not isinstance(node, exp.Anonymous) else node.expressions[:1]
        width = value_bytes(args[0] if args else None, context.engine, column_width(scope, context))
        if width is None:
            continue  # a builder with an unknown size inside: the generators rule refused it
        separator = node.args.get("separator")
        if separator is not None:
            width += value_bytes(separator, context.engine) or 0.0
        value = max(rows, 1.0) * max(width, float(ELEMENT_BYTES))
        sized.append((node, value, input_count if window is not None else 1.0))
    return sized


def enclosing_scope(node: exp.Expr, context: RuleContext) -> Scope | None:
    """The select scope ``node`` is evaluated in (its nearest SELECT's), or None."""
    by_select = context.derived.get("scopes_by_select")
    if not isinstance(by_select, dict):
        by_select = {id(s.expression): s for s in context.scopes}
        context.derived["scopes_by_select"] = by_select
    select = node.parent
    while select is not None and not isinstance(select, exp.Select):
        select = select.parent
    found = by_select.get(id(select)) if select is not None else None
    return cast("Scope | None", found)  # only ever stored just above


def scope_input_rows(scope: Scope, context: RuleContext) -> float:
    """The rows ``scope`` reads (after joins and filters, before grouping and LIMIT)."""
    estimate_rows(context)  # fills every select scope's input rows
    entry = input_rows(context).get(id(scope))
    return entry[1] if entry is not None and entry[0] is scope else DEFAULT_TABLE_ROWS


def _frame_rows(window: exp.Window) -> float | None:
    """Rows in a ``ROWS BETWEEN n PRECEDING AND m FOLLOWING`` frame with constant bounds
    (CURRENT ROW counts 0), or None (unbounded, RANGE frames, the default frame)."""
    spec = window.args.get("spec")
    if not isinstance(spec, exp.WindowSpec) or str(spec.args.get("kind")).upper() != "ROWS":
        return None
    count = 1.0
    for bound, side in (("start", "start_side"), ("end", "end_side")):
        value = spec.args.get(bound)
        if isinstance(value, str) and value.upper() == "CURRENT ROW":
            continue
        number = constant(value) if isinstance(value, exp.Expr) else None
        if number is None:
            return None  # UNBOUNDED, or not a constant
        count += abs(number)
        if str(spec.args.get(side) or "").upper() not in ("PRECEDING", "FOLLOWING"):
            return None
    return count


def result_row_width(context: RuleContext) -> float:
    """Bytes of one result row of the qualified statement (see the module docstring)."""
    if not context.scopes:
        return 0.0
    return _scope_width(context.scopes[-1], context)


def _scope_width(scope: Scope, context: RuleContext) -> float:
    if isinstance(scope.expression, exp.SetOperation) and scope.set_operation_scopes:
        return max(_scope_width(s, context) for s in scope.set_operation_scopes)
    select = scope.expression
    if not isinstance(select, exp.Select):
        return float(ELEMENT_BYTES)
    values = built_values(context)
    if values.scalars or values.aggregates:
        return _built_width(select, scope, context, values)
    # Nothing in the statement builds a value: catalog widths, literals, 8 bytes otherwise.
    total = 0.0
    for projection in select.expressions:
        value = projection.unalias()
        width = None
        if isinstance(value, exp.Column):
            found = context.column_stats(value, scope)
            stats = found[0].column(found[1]) if found is not None else None
            width = stats.avg_width if stats is not None else None
        elif isinstance(value, exp.Literal) and value.is_string:
            width = len(value.this.encode())
        total += float(width) if width is not None else float(ELEMENT_BYTES)
    return total


def _built_width(
    select: exp.Select, scope: Scope, context: RuleContext, values: BuiltValues
) -> float:
    """The row width of a SELECT in a statement that builds values: projections sized with
    ``value_bytes`` (through CTE columns), aggregates by their built size."""
    widths = column_width(scope, context)
    built = values.aggregates
    limit = float(context.policy.max_bytes_built)
    total = 0.0
    for projection in select.expressions:
        value = projection.unalias()
        if isinstance(value, exp.Window):  # string_agg(...) OVER (...): the aggregate's size
            value = value.this
        if id(value) in built and built[id(value)][0] is value:
            total += built[id(value)][1]
        else:
            size = value_bytes(value, context.engine, widths)
            total += limit if size is None else size
    return total
