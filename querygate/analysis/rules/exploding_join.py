"""``exploding-join``: a many-to-many equi-join, judged from keys and distinct counts.

When neither side's join columns form a key, the join produces about
``rows(a) * rows(b) / max(NDV(a.keys), NDV(b.keys))`` rows; the fan-out is that divided by the
larger side. Warn when the fan-out passes the policy's ``exploding_join_factor``; error when
the output passes ``max_intermediate_rows``. Silent when a distinct count is unknown. A side
read from a CTE or derived table counts with the distinct counts of the columns it passes on.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from querygate.analysis.context import RuleContext
from querygate.analysis.estimate import ndv_lookup, rows_memo, scope_conjuncts, scope_rows
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

EXPLODING_JOIN = template(
    "exploding-join",
    gettext_noop(
        "Many-to-many join of %(left)s and %(right)s on %(left_keys)s = %(keys)s: neither side "
        "is unique on its join columns, so the join yields about %(rows)s rows (%(fan_out)sx "
        "the larger input)."
    ),
    gettext_noop(
        "Aggregate one side to one row per key first, e.g. (SELECT %(keys)s, ... FROM "
        "%(right)s GROUP BY %(keys)s), or join on a full key."
    ),
)


def exploding_join(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per pair of base tables joined many-to-many."""
    findings: list[Finding] = []
    for scope in context.scopes:
        pairs: dict[tuple[str, str], list[tuple[exp.Column, exp.Column]]] = {}
        for predicate in scope_conjuncts(scope, context):
            if not isinstance(predicate, exp.EQ):
                continue
            left, right = predicate.left.unnest(), predicate.right.unnest()
            if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
                continue
            sources = scope.selected_sources
            a, b = (left, right) if left.table <= right.table else (right, left)
            if a.table != b.table and a.table in sources and b.table in sources:
                pairs.setdefault((a.table, b.table), []).append((a, b))
        for (left_alias, right_alias), columns in pairs.items():
            finding = _judge(columns, scope, context)  # most joins reach a key: None
            if finding is None:
                continue
            others = set(pairs) - {(left_alias, right_alias)}
            if not _connected_without(left_alias, right_alias, others):
                findings.append(finding)  # no other join path relates them
    return findings


def _connected_without(start: str, goal: str, edges: set[tuple[str, str]]) -> bool:
    """True when ``goal`` is reachable from ``start`` over ``edges`` (undirected)."""
    seen, frontier = {start}, [start]
    while frontier:
        node = frontier.pop()
        for a, b in edges:
            for here, there in ((a, b), (b, a)):
                if here == node and there not in seen:
                    if there == goal:
                        return True
                    seen.add(there)
                    frontier.append(there)
    return False


@dataclass
class _Side:
    """One side of a join: its name (table or CTE alias), join column names, rows, the NDV
    of the column combination, and whether those columns are unique."""

    name: str
    columns: set[str]
    rows: float
    ndv: float
    unique: bool


def _side(columns: list[exp.Column], scope: Scope, context: RuleContext) -> _Side | None:
    """The side the join ``columns`` read, or None when unknown. A CTE's or derived table's
    columns count through to the columns they pass on (``estimate.ndv_lookup``), so wrapping
    each side of a many-to-many join in a CTE does not hide it."""
    table = context.base_table(columns[0], scope)
    stats = context.table_stats(table) if table is not None else None
    names = {c.name.lower() for c in columns}
    if stats is None:
        return _derived_side(columns, names, scope, context)
    if not stats.rows:
        return None
    if stats.is_unique(names):
        return _Side(stats.name, names, float(stats.rows), float(stats.rows), True)
    ndv = 1.0
    for name in names:
        column = stats.column(name)
        if column is None or column.distinct is None:
            return None
        ndv *= column.distinct
    return _Side(stats.name, names, float(stats.rows), min(ndv, float(stats.rows)), False)


def _derived_side(
    columns: list[exp.Column], names: set[str], scope: Scope, context: RuleContext
) -> _Side | None:
    source = scope.sources.get(columns[0].table)
    if not isinstance(source, Scope):
        return None
    rows, _ = scope_rows(source, context, rows_memo(context))
    lookup = ndv_lookup(scope, context)
    ndv = 1.0
    for column in columns:
        distinct = lookup(column)
        if distinct is None:
            return None
        ndv *= distinct
    ndv = min(ndv, rows)
    return _Side(columns[0].table, names, rows, ndv, ndv >= rows)


def _judge(
    pairs: list[tuple[exp.Column, exp.Column]], scope: Scope, context: RuleContext
) -> Finding | None:
    left = _side([p[0] for p in pairs], scope, context)
    if left is None or left.unique:
        return None  # most joins reach a key: the other side need not be looked at
    right = _side([p[1] for p in pairs], scope, context)
    if right is None or right.unique:
        return None
    output = left.rows * right.rows / max(left.ndv, right.ndv, 1.0)
    fan_out = output / max(left.rows, right.rows, 1.0)
    policy = context.policy
    if fan_out < policy.exploding_join_factor:
        return None
    severity = Severity.ERROR if output > policy.max_intermediate_rows else Severity.WARN
    keys = ", ".join(sorted(right.columns))
    return context.finding(
        "exploding-join",
        severity,
        EXPLODING_JOIN(
            left=left.name,
            right=right.name,
            left_keys=", ".join(sorted(left.columns)),
            keys=keys,
            rows=f"{int(output):,}",
            fan_out=f"{fan_out:,.0f}",
        ),
        at=pairs[0][0].parent,
    )
