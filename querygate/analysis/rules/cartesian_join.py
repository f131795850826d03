"""``cartesian-join``: sources of one SELECT that no predicate connects (a missing join
condition). Warn; error when the product of the disconnected parts' rows passes the
policy's ``max_intermediate_rows``. A source producing one row (an aggregate without GROUP
BY, LIMIT 1) and a table function (UNNEST) are exempt."""

from __future__ import annotations

from collections.abc import Collection

from sqlglot import exp
from sqlglot.optimizer.scope import Scope
from sqlglot.tokenizer_core import TokenType

from querygate.analysis.context import RuleContext
from querygate.analysis.estimate import rows_memo, scope_conjuncts, scope_rows
from querygate.analysis.findings import Finding, Severity, gettext_noop, template
from querygate.analysis.predicates import is_always_true


def cartesian_join(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """One finding per source that no predicate joins to the first source's component."""
    findings: list[Finding] = []
    for scope in context.scopes:
        if isinstance(scope.expression, exp.Select) and len(scope.selected_sources) > 1:
            findings += _check_scope(scope, context)
    return findings


def _check_scope(scope: Scope, context: RuleContext) -> list[Finding]:
    aliases = list(scope.selected_sources)
    parent = {a: a for a in aliases}

    def find(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    def union(group: Collection[str]) -> None:
        if len(group) < 2:
            return  # a one-table predicate joins nothing
        roots = sorted({find(a) for a in group if a in parent}, key=aliases.index)
        for root in roots[1:]:
            parent[root] = roots[0]

    for predicate in scope_conjuncts(scope, context):
        union(context.column_tables(predicate))
    for join in scope.expression.args.get("joins") or []:
        on = join.args.get("on")
        if join.args.get("using") or (on is not None and is_always_true(on)):
            union({aliases[0], join.this.alias_or_name})
    for alias, (node, source) in scope.selected_sources.items():
        if _is_single_row_or_function(node, source, context):
            union({aliases[0], alias})
    findings: list[Finding] = []
    seen = {find(aliases[0])}
    for alias in aliases[1:]:
        root = find(alias)
        if root not in seen:
            seen.add(root)
            findings.append(_finding(scope, aliases[0], alias, context))
    return findings


def _is_single_row_or_function(
    node: exp.Expr, source: exp.Expr | Scope, context: RuleContext
) -> bool:
    if isinstance(source, exp.Table) and not isinstance(source.this, exp.Identifier):
        return True
    if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
        return True
    if isinstance(source, Scope):
        if source.external_columns:
            return True  # a LATERAL subquery: correlated with the sources before it
        rows, _ = scope_rows(source, context, rows_memo(context))
        return rows <= 1
    return False


def _finding(scope: Scope, left: str, right: str, context: RuleContext) -> Finding:
    memo = rows_memo(context)
    sizes = []
    for alias in (left, right):
        node, source = scope.selected_sources[alias]
        if isinstance(source, Scope):
            sizes.append(scope_rows(source, context, memo)[0])
        else:
            stats = context.table_stats(source)
            sizes.append(float(stats.rows or 0) if stats else 0.0)
    product = sizes[0] * sizes[1]
    severity = Severity.ERROR if product > context.policy.max_intermediate_rows else Severity.WARN
    node = scope.selected_sources[right][0]
    return context.finding(
        "cartesian-join",
        severity,
        CARTESIAN_JOIN(
            right=right,
            left=left,
            rows=f"{int(product):,}",
            condition=_join_shape(scope, left, right, context),
        ),
        at=context.keyword_position(node, {TokenType.JOIN}),
    )


CARTESIAN_JOIN = template(
    "cartesian-join",
    gettext_noop(
        "Nothing joins %(right)s to %(left)s: every row of one is paired with every row of "
        "the other (about %(rows)s rows)."
    ),
    gettext_noop("Add a join condition: JOIN %(right)s ON %(condition)s."),
)


def _join_shape(scope: Scope, left: str, right: str, context: RuleContext) -> str:
    """``left.x = right.y`` for columns whose names match after their prefix (``o_custkey``
    and ``c_custkey``), preferring a key column; a placeholder shape otherwise."""
    tables = [scope.selected_sources[a][1] for a in (left, right)]
    stats = [context.table_stats(t) if isinstance(t, exp.Table) else None for t in tables]
    if stats[0] is not None and stats[1] is not None:
        keys = {c for key in stats[0].keys() + stats[1].keys() for c in key}
        best: tuple[int, str, str] | None = None
        for a in stats[0].columns:
            for b in stats[1].columns:
                if _stem(a.name) == _stem(b.name):
                    score = int(a.name.lower() in keys) + int(b.name.lower() in keys)
                    if best is None or score > best[0]:
                        best = (score, a.name, b.name)
        if best is not None:
            return f"{left}.{best[1]} = {right}.{best[2]}"
    return f"{left}.<key> = {right}.<key>"


def _stem(name: str) -> str:
    lowered = name.lower()
    return lowered.split("_", 1)[1] if "_" in lowered else lowered
