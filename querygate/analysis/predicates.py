"""Predicate logic shared by rules and the estimate: conjuncts, constant truth, sargability
and selectivity.

Selectivity heuristics (System R's classic defaults, with NDV where the catalog has it):

==============================  =========================================
predicate                       selectivity
==============================  =========================================
``col = const``                 1 / NDV(col), else 0.1
``col IN (k constants)``        k / NDV(col), else 0.1 * k (at most 1)
``col <> const``                0.9
``<, <=, >, >=``                1/3
``BETWEEN``                     1/4
``LIKE`` / ``ILIKE``            0.1
``IS NULL`` / ``IS NOT NULL``   0.05 / 0.95
``NOT p``                       1 - s(p)
``p AND q`` / ``p OR q``        s(p) * s(q) / s(p) + s(q) - s(p) * s(q)
anything else                   1 (no reduction: the estimate is an upper bound)
==============================  =========================================
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

#: A lookup of a column's NDV (None when unknown).
NdvLookup = Callable[[exp.Column], int | None]

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_REFLEXIVE = (exp.EQ, exp.GTE, exp.LTE, exp.NullSafeEQ)


def conjuncts(condition: exp.Expr | None) -> list[exp.Expr]:
    """The AND-ed parts of ``condition`` (parentheses removed); [] for None."""
    if condition is None:
        return []
    condition = condition.unnest()
    if isinstance(condition, exp.And):
        return conjuncts(condition.left) + conjuncts(condition.right)
    return [condition]


def disjuncts(condition: exp.Expr) -> list[exp.Expr]:
    """The OR-ed parts of ``condition`` (parentheses removed)."""
    condition = condition.unnest()
    if isinstance(condition, exp.Or):
        return disjuncts(condition.left) + disjuncts(condition.right)
    return [condition]


_LEAF_CONSTANTS = (exp.Literal, exp.Boolean, exp.Null, exp.Placeholder)


def is_constant(node: exp.Expr) -> bool:
    """True when ``node`` references no column and no subquery (a literal, a parameter,
    ``CURRENT_DATE``, arithmetic on those...)."""
    if isinstance(node, _LEAF_CONSTANTS):
        return True  # the common cases first, without a walk
    if isinstance(node, exp.Column):
        return False
    tables, has_query = column_tables_and_query(node)
    return not tables and not has_query


def column_tables_and_query(node: exp.Expr) -> tuple[frozenset[str], bool]:
    """(the table qualifiers of the columns under ``node``, whether a query is under it),
    by a walk in Python that enters neither columns nor constants: for the small
    predicates that make most of a query it costs less than ``find_all``'s generator,
    whose start-up alone takes a few microseconds.

    >>> import sqlglot
    >>> tables, has_query = column_tables_and_query(sqlglot.parse_one("a.x + 1 > b.y"))
    >>> sorted(tables), has_query
    (['a', 'b'], False)
    """
    tables: set[str] = set()
    has_query = False
    stack = [node]
    pop, push = stack.pop, stack.extend
    while stack:
        current = pop()
        if current.__class__ is exp.Column:
            tables.add(current.table)
        elif not isinstance(current, _LEAF_CONSTANTS):
            if isinstance(current, exp.Query):
                has_query = True
            push(current.iter_expressions())
    return frozenset(tables), has_query


def is_always_true(condition: exp.Expr) -> bool:
    """True for a condition that holds for every row: TRUE, ``1 = 1``, ``x = x``, and an OR
    with such a branch.

    >>> import sqlglot
    >>> is_always_true(sqlglot.parse_one("a > 1 OR 1 = 1"))
    True
    >>> is_always_true(sqlglot.parse_one("a = b"))
    False
    """
    condition = condition.unnest()
    if isinstance(condition, exp.Boolean):
        return bool(condition.this)
    if isinstance(condition, exp.Or):
        return any(is_always_true(part) for part in disjuncts(condition))
    if isinstance(condition, exp.And):
        return all(is_always_true(part) for part in conjuncts(condition))
    if isinstance(condition, _REFLEXIVE) and _same(condition.left, condition.right):
        return condition.left.find(exp.Rand, exp.Query) is None
    if isinstance(condition, _COMPARISONS) and is_literal(condition.left):
        return is_literal(condition.right) and _compare_literals(condition)
    return False


def _same(left: exp.Expr, right: exp.Expr) -> bool:
    """``left == right`` (sqlglot compares whole subtrees), with the common answer for two
    columns of different names first: most comparisons are joins of different columns."""
    if left.__class__ is not right.__class__:
        return False
    if left.__class__ is exp.Column and left.name.lower() != right.name.lower():
        return False
    return left == right


def is_literal(node: exp.Expr) -> bool:
    """True for a plain number or string literal (possibly negated)."""
    node = node.unnest()
    if isinstance(node, exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal)


def _compare_literals(condition: exp.Binary) -> bool:
    left, right = condition.left.unnest(), condition.right.unnest()
    try:
        # copy=False: a literal (or its negation) needs no copy to be printed.
        lv: float | str = float(left.sql(copy=False)) if not left.is_string else left.name
        rv: float | str = float(right.sql(copy=False)) if not right.is_string else right.name
    except ValueError:
        return False
    if type(lv) is not type(rv):
        return False
    checks: dict[type[exp.Expr], Callable[[], bool]] = {
        exp.EQ: lambda: lv == rv,
        exp.NEQ: lambda: lv != rv,
        exp.GT: lambda: lv > rv,  # type: ignore[operator]
        exp.GTE: lambda: lv >= rv,  # type: ignore[operator]
        exp.LT: lambda: lv < rv,  # type: ignore[operator]
        exp.LTE: lambda: lv <= rv,  # type: ignore[operator]
    }
    return checks[type(condition)]()


def compared_column(predicate: exp.Expr) -> tuple[exp.Expr, exp.Expr] | None:
    """For a comparison, BETWEEN or IN with a constant side: (the other side, the constant
    side); None for anything else. The other side may be a bare column or an expression."""
    predicate = predicate.unnest()
    if isinstance(predicate, _COMPARISONS):
        left, right = predicate.left, predicate.right
        if is_constant(right) and not is_constant(left):
            return left, right
        if is_constant(left) and not is_constant(right):
            return right, left
        return None
    if isinstance(predicate, exp.Between):
        if is_constant(predicate.args["low"]) and is_constant(predicate.args["high"]):
            return predicate.this, predicate
    elif isinstance(predicate, exp.In) and not predicate.args.get("query"):
        constants = all(is_constant(e) for e in predicate.expressions)
        return (predicate.this, predicate) if constants else None
    return None


def join_pairs(predicate: exp.Expr) -> list[tuple[exp.Column, exp.Column]]:
    """Column equalities between two different tables that ``predicate`` implies: itself when
    it is one, or the equalities every branch of an OR shares (TPC-H Q19's shape).

    >>> import sqlglot
    >>> p = sqlglot.parse_one("(a.x = b.y AND a.z = 1) OR (a.x = b.y AND a.z = 2)")
    >>> [(l.sql(), r.sql()) for l, r in join_pairs(p)]
    [('a.x', 'b.y')]
    """
    predicate = predicate.unnest()
    if isinstance(predicate, exp.Or):
        branches = [
            {_pair_key(p): p for c in conjuncts(d) for p in join_pairs(c)}
            for d in disjuncts(predicate)
        ]
        return [pair for key, pair in branches[0].items() if all(key in b for b in branches)]
    if not isinstance(predicate, exp.EQ):
        return []
    left, right = predicate.left.unnest(), predicate.right.unnest()
    if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
        return []
    return [(left, right)] if left.table and right.table and left.table != right.table else []


def _pair_key(pair: tuple[exp.Column, exp.Column]) -> frozenset[tuple[str, str]]:
    return frozenset((column.table, column.name) for column in pair)


def selectivity(predicate: exp.Expr, ndv: NdvLookup) -> float:
    """Fraction of rows ``predicate`` keeps, by the heuristics in the module docstring."""
    predicate = predicate.unnest()
    if isinstance(predicate, exp.And):
        return selectivity(predicate.left, ndv) * selectivity(predicate.right, ndv)
    if isinstance(predicate, exp.Or):
        a, b = selectivity(predicate.left, ndv), selectivity(predicate.right, ndv)
        return a + b - a * b
    if isinstance(predicate, exp.Not):
        return 1.0 - selectivity(predicate.this, ndv)
    if is_always_true(predicate):
        return 1.0
    return _atom_selectivity(predicate, ndv)


def _atom_selectivity(predicate: exp.Expr, ndv: NdvLookup) -> float:
    if isinstance(predicate, exp.Is):
        return 0.95 if isinstance(predicate.parent, exp.Not) else 0.05
    if isinstance(predicate, (exp.Like, exp.ILike)):
        return 0.1
    sides = compared_column(predicate)
    if sides is None:
        return 1.0
    target = sides[0].unnest()
    distinct = ndv(target) if isinstance(target, exp.Column) else None
    if isinstance(predicate, exp.EQ):
        return 1.0 / distinct if distinct else 0.1
    if isinstance(predicate, exp.In):
        count = len(predicate.expressions)
        return min(1.0, count / distinct if distinct else 0.1 * count)
    if isinstance(predicate, exp.NEQ):
        return 0.9
    if isinstance(predicate, exp.Between):
        return 0.25
    return 1.0 / 3.0
