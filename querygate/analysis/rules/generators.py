"""Generators and value builders sized from their arguments (see ``builders.py``).

``unbounded-generator`` (error): a generator (``range``, ``generate_series``, a counting
recursive CTE) or builder (``repeat``, ``lpad``/``rpad``, ``space``, ``printf``/``format``,
``list_resize``, ``array_fill``) whose size argument is not a constant: a column, a subquery,
another generator. Its size cannot be known before it runs, so it is refused.
``generator-too-large`` (error): constant bounds that make more rows or list elements than the
policy's ``max_generated_rows``.
``value-too-large`` (error): an expression that builds a value larger than the policy's
``max_bytes_built`` (``repeat('x', 1e9)``, ``printf('%1000000000d', 1)``); the aggregates that
build one value of their rows (``string_agg``, ``list``...) are judged by the estimate's rule
``aggregate_values`` (with the rules that need resolved columns) once the rows are known.

Runs with the gate rules, on the tree as written, for every statement (an INSERT ... SELECT
builds the same values). Where builders nest, only the innermost one at fault is reported (an
outer one is at fault because of it). The totals (``generated_rows``, the largest
``bytes_built``) are kept on the context for the estimate (``estimate.built_values``).
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from querygate.analysis.builders import (
    ANONYMOUS_BUILDERS,
    BUILDER_CLASSES,
    GENERATOR_CLASSES,
    built_bytes,
    generator_count,
    recursion_rows,
)
from querygate.analysis.context import RuleContext
from querygate.analysis.estimate import BuiltValues, aggregate_builders, built_values
from querygate.analysis.findings import Finding, Severity, line_column, start_offset
from querygate.analysis.query_shape import has_limit
from querygate.analysis.rules.functions import function_name

MIB = 1024**2
_NAME = re.compile(r"(\w+)\s*\(")


def generators(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """Size every generator and builder; refuse the unknown and the too large."""
    totals = built_values(context)
    faults: dict[int, tuple[exp.Expr, Finding]] = {}
    # By id: a class may subclass another (ExplodingGenerateSeries is a GenerateSeries).
    nodes = {
        id(n): n
        for kind in (*GENERATOR_CLASSES, *BUILDER_CLASSES)
        for n in context.parsed_nodes(kind)
    }
    builders = ANONYMOUS_BUILDERS.get(context.engine, {})
    for node in context.parsed_nodes(exp.Anonymous):
        if node.name.lower() in builders:
            nodes[id(node)] = node
    for node in nodes.values():
        _judge(node, context, totals, faults)
    for with_ in context.parsed_nodes(exp.With):
        if with_.args.get("recursive"):
            for cte in with_.expressions:
                _judge_recursion(cte, context, totals, faults)
    # Innermost faults only: drop a node with a faulty builder below it.
    outer: set[int] = set()
    for node, _ in faults.values():
        parent = node.parent
        while parent is not None:
            outer.add(id(parent))
            parent = parent.parent
    return [finding for key, (_, finding) in faults.items() if key not in outer]


def _judge(
    node: exp.Expr,
    context: RuleContext,
    totals: BuiltValues,
    faults: dict[int, tuple[exp.Expr, Finding]],
) -> None:
    policy = context.policy
    name = written_name(node, context)
    text = _shown(node, context)
    if isinstance(node, GENERATOR_CLASSES):
        count = generator_count(node)
        if count is None:
            faults[id(node)] = (node, _unbounded(node, name, text, context))
            return
        if count > policy.max_generated_rows:
            faults[id(node)] = (node, _too_many(node, text, count, context))
            return
        totals.generated_rows += count
        if isinstance(node.parent, exp.Table) or isinstance(node, exp.ExplodingGenerateSeries):
            return  # rows (of a FROM clause, or PostgreSQL's set-returning call), not a list
    size = built_bytes(node, context.engine)
    if size is None:
        faults[id(node)] = (node, _unbounded(node, name, text, context))
        return
    if size > policy.max_bytes_built:
        faults[id(node)] = (node, _too_big(node, text, size, context))
        return
    totals.bytes_built = max(totals.bytes_built, size)


def _judge_recursion(
    cte: exp.CTE,
    context: RuleContext,
    totals: BuiltValues,
    faults: dict[int, tuple[exp.Expr, Finding]],
) -> None:
    counter, rows = recursion_rows(cte)
    if not counter:
        return
    policy = context.policy
    name = cte.alias_or_name
    if rows is None:
        if has_limit(context.parsed) or cte.this.expression.args.get("where") is None:
            # Both engines stop a recursion when the LIMIT is reached; a member without any
            # WHERE is the ``unbounded-recursive-cte`` rule's.
            return
        faults[id(cte)] = (
            cte,
            context.finding(
                "unbounded-generator",
                Severity.ERROR,
                f"The recursive CTE {name} counts up with no constant bound on its counter: "
                "how many rows it generates cannot be known before it runs.",
                at=cte.args.get("alias") or cte,
                suggestion="Bound the column it steps with a constant in the recursive "
                f"member's WHERE (e.g. WHERE n < 1000) so that it makes at most "
                f"{policy.max_generated_rows:,} rows, or add a LIMIT to the query.",
            ),
        )
    elif rows > policy.max_generated_rows:
        faults[id(cte)] = (
            cte,
            context.finding(
                "generator-too-large",
                Severity.ERROR,
                f"The recursive CTE {name} generates about {rows:,.0f} rows, over the limit "
                f"of {policy.max_generated_rows:,} generated rows.",
                at=cte.args.get("alias") or cte,
                suggestion=f"Lower the bound on its counter so that it makes at most "
                f"{policy.max_generated_rows:,} rows, or read the rows from a table.",
            ),
        )
    else:
        totals.generated_rows += rows


def written_name(node: exp.Expr, context: RuleContext) -> str:
    """The function's name as the SQL spells it (``range``, ``string_agg``: sqlglot's class
    names differ), lower case; sqlglot's name when the text does not show it."""
    offset = _call_offset(node, context)
    match = _NAME.match(context.sql, offset) if offset is not None else None
    if match is not None:
        return match.group(1).lower()
    return function_name(node)  # type: ignore[arg-type] # generators and builders are Funcs


def _call_offset(node: exp.Expr, context: RuleContext) -> int | None:
    """Where the call ``node`` starts in the SQL text: sqlglot places some calls at their
    first argument (``string_agg(x, ',')``), so step back over ``name(`` when it is there."""
    offset = start_offset(node)
    if offset is None:
        return None
    tokens = context.tokens
    for index, token in enumerate(tokens):
        if token.start >= offset:
            after_paren = index >= 2 and tokens[index - 1].token_type == TokenType.L_PAREN
            if after_paren and (token.start > offset or not _NAME.match(context.sql, offset)):
                return tokens[index - 2].start
            break
    return offset


def _at(node: exp.Expr, context: RuleContext) -> tuple[int, int] | exp.Expr:
    offset = _call_offset(node, context)
    return line_column(context.sql, offset) if offset is not None else node


def _shown(node: exp.Expr, context: RuleContext) -> str:
    text = context.sql_of(node)
    return text if len(text) <= 80 else text[:77] + "..."


def _unbounded(node: exp.Expr, name: str, text: str, context: RuleContext) -> Finding:
    limit = context.policy.max_generated_rows
    if isinstance(node, GENERATOR_CLASSES):
        what = f"how many rows {text} generates"
        fix = (
            f"Give {name}() constant bounds and step (numbers, or date/timestamp literals with "
            f"an interval step) that make at most {limit:,} rows, e.g. {name}(1, 1000); to "
            "number a table's rows use row_number() OVER () instead."
        )
    elif name in ("printf", "format"):
        what = f"how large a string {text} builds"
        fix = (
            f"Use a literal format string with literal widths (e.g. '%10s') in {name}(), and "
            "constant arguments for any * width."
        )
    else:
        what = f"how large a value {text} builds"
        fix = (
            f"Give {name}() a constant size (a literal such as {name}(..., 100)) that builds "
            f"at most {context.policy.max_bytes_built // MIB:,} MiB."
        )
    return context.finding(
        "unbounded-generator",
        Severity.ERROR,
        f"The size argument of {name}() is not a constant, so {what} cannot be known before "
        "it runs.",
        at=_at(node, context),
        suggestion=fix,
    )


def _too_many(node: exp.Expr, text: str, count: float, context: RuleContext) -> Finding:
    limit = context.policy.max_generated_rows
    return context.finding(
        "generator-too-large",
        Severity.ERROR,
        f"{text} generates about {count:,.0f} rows, over the limit of {limit:,} generated "
        "rows (the engine builds them all in memory or temp files).",
        at=_at(node, context),
        suggestion=f"Generate at most {limit:,} rows: lower the bounds (or raise the step), "
        "or read the rows from a table.",
    )


def _too_big(node: exp.Expr, text: str, size: float, context: RuleContext) -> Finding:
    limit = context.policy.max_bytes_built
    return context.finding(
        "value-too-large",
        Severity.ERROR,
        f"{text} builds a value of about {size / MIB:,.0f} MiB, over the limit of "
        f"{limit / MIB:,.0f} MiB for one value.",
        at=_at(node, context),
        suggestion=f"Build at most {limit / MIB:,.0f} MiB per value: lower the length or count "
        "argument, or produce rows instead of one huge value.",
    )


def aggregate_values(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """``value-too-large`` for an aggregate that builds one value of more rows than fit
    (``string_agg``, ``list``, ``array_agg``, ``json_agg``... over a generator or a table)."""
    totals = built_values(context)
    limit = context.policy.max_bytes_built
    findings: list[Finding] = []
    for node, size in aggregate_builders(context):
        totals.aggregates[id(node)] = (node, size)
        totals.bytes_built = max(totals.bytes_built, size)
        if size > limit:
            name = written_name(node, context)
            findings.append(
                context.finding(
                    "value-too-large",
                    Severity.ERROR,
                    f"{_shown(node, context)} builds one value of about {size / MIB:,.0f} MiB "
                    f"per group from its rows, over the limit of {limit / MIB:,.0f} MiB for "
                    "one value.",
                    at=_at(node, context),
                    suggestion=f"Return the rows instead of {name}() (add a LIMIT), filter to "
                    f"fewer rows, or GROUP BY a finer key so that each value stays under "
                    f"{limit / MIB:,.0f} MiB.",
                )
            )
    return findings
