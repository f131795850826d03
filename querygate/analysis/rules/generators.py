"""Generators and value builders sized from their arguments (see ``builders.py``).

``unbounded-generator`` (error): a generator (``range``, ``generate_series``, a counting
recursive CTE) or builder (``repeat``, ``lpad``/``rpad``, ``space``, ``printf``/``format``,
``list_resize``, ``array_fill``) whose size argument is not a constant: a column, a subquery,
another generator. Its size cannot be known before it runs, so it is refused.
``generator-too-large`` (error): constant bounds that make more rows or list elements than the
policy's ``max_generated_rows``.
``value-too-large`` (error): an expression that builds a value larger than the policy's
``max_bytes_built`` (``repeat('x', 1e9)``, ``printf('%1000000000d', 1)``). What needs row
counts and catalog widths is judged by ``aggregate_values``, with the rules that need
resolved columns: aggregates that build one value of their rows (``string_agg``, ``list``...,
per group or per window row), values built from a column for a DuckDB vector of 2,048 rows,
built sort / group / DISTINCT / window keys kept for every row (against
``max_result_bytes``), and values a CTE built that a query puts together outside it.

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
    recursion_value_bytes,
    recursive_parts,
    value_bytes,
)
from querygate.analysis.context import RuleContext
from querygate.analysis.estimate import (
    BuiltValues,
    aggregate_builders,
    built_values,
    column_width,
    enclosing_scope,
    scope_input_rows,
)
from querygate.analysis.findings import (
    Finding,
    Severity,
    Text,
    gettext_noop,
    line_column,
    start_offset,
    template,
)
from querygate.analysis.query_shape import limit_stops_reading
from querygate.analysis.rules.functions import function_name

MIB = 1024**2
_NAME = re.compile(r"(\w+)\s*\(")


# The templates of this module's findings. A count or size parameter is a phrase of its own,
# "about 1,000" or "more than 10^18" (``_count``, ``_mib``), translated with the sentence.
ABOUT = template("phrase.about", gettext_noop("about %(number)s"))
MORE_THAN_1E18 = template("phrase.more-than-1e18", gettext_noop("more than 10^18"))
MORE_THAN_1E12 = template("phrase.more-than-1e12", gettext_noop("more than 10^12"))
UNBOUNDED_RECURSION = template(
    "unbounded-generator.recursion",
    gettext_noop(
        "The recursive CTE %(name)s generates rows from itself with no constant bound that "
        "stops it: how many rows it makes cannot be known before it runs."
    ),
    gettext_noop(
        "Step one column by a constant and bound it with a constant in every recursive "
        "member's WHERE (e.g. SELECT n + 1 ... WHERE n < 1000), so that it makes at most "
        "%(limit)s rows; or add a LIMIT to the query."
    ),
)
UNBOUNDED_ROWS = template(
    "unbounded-generator",
    gettext_noop(
        "The size argument of %(name)s() is not a constant, so how many rows %(text)s "
        "generates cannot be known before it runs."
    ),
    gettext_noop(
        "Give %(name)s() constant bounds and step (numbers, or date/timestamp literals with an "
        "interval step) that make at most %(limit)s rows, e.g. %(name)s(1, 1000); to number a "
        "table's rows use row_number() OVER () instead."
    ),
)
UNBOUNDED_FORMAT = template(
    "unbounded-generator.format",
    gettext_noop(
        "The size argument of %(name)s() is not a constant, so how large a string %(text)s "
        "builds cannot be known before it runs."
    ),
    gettext_noop(
        "Use a literal format string with literal widths (e.g. '%%10s') in %(name)s(), and "
        "constant arguments for any * width."
    ),
)
UNBOUNDED_SIZE = template(
    "unbounded-generator.size",
    gettext_noop(
        "The size argument of %(name)s() is not a constant, so how large a value %(text)s "
        "builds cannot be known before it runs."
    ),
    gettext_noop(
        "Give %(name)s() a constant size (a literal such as %(name)s(..., 100)) that builds at "
        "most %(mib)s MiB."
    ),
)
RECURSION_TOO_LARGE = template(
    "generator-too-large.recursion",
    gettext_noop(
        "The recursive CTE %(name)s generates %(count)s rows, over the limit of %(limit)s "
        "generated rows."
    ),
    gettext_noop(
        "Lower the bound on the column it steps (or its fan-out: members and generators it "
        "reads) so that it makes at most %(limit)s rows, or read the rows from a table."
    ),
)
GENERATOR_TOO_LARGE = template(
    "generator-too-large",
    gettext_noop(
        "%(text)s generates %(count)s rows, over the limit of %(limit)s generated rows (the "
        "engine builds them all in memory or temp files)."
    ),
    gettext_noop(
        "Generate at most %(limit)s rows: lower the bounds (or raise the step), or read the "
        "rows from a table."
    ),
)
RECURSION_GROWS = template(
    "value-too-large.recursion",
    gettext_noop(
        "The recursive CTE %(name)s grows its column %(column)s at every step, to %(size)s MiB "
        "or more within %(steps)s steps, over the limit of %(limit)s MiB for one value."
    ),
    gettext_noop(
        "Do not feed %(column)s back into itself twice (e.g. %(column)s || %(column)s); append "
        "a bounded piece per step, or lower the recursion's bound."
    ),
)
VALUE_TOO_LARGE = template(
    "value-too-large",
    gettext_noop(
        "%(text)s builds a value of %(size)s MiB, over the limit of %(limit)s MiB for one value."
    ),
    gettext_noop(
        "Build at most %(limit)s MiB per value: lower the length or count argument, or "
        "produce rows instead of one huge value."
    ),
)
AGGREGATE_TOO_LARGE = template(
    "value-too-large.aggregate",
    gettext_noop(
        "%(text)s builds one value of %(size)s MiB per group from its rows, over the limit of "
        "%(limit)s MiB for one value."
    ),
    gettext_noop(
        "Return the rows instead of %(name)s() (add a LIMIT), filter to fewer rows, or GROUP "
        "BY a finer key so that each value stays under %(limit)s MiB."
    ),
)
VECTOR_TOO_LARGE = template(
    "value-too-large.vector",
    gettext_noop(
        "%(text)s builds about %(per_row)s MiB per row, and DuckDB builds it for %(batch)s "
        "rows at a time: %(size)s MiB, over the limit of %(limit)s MiB."
    ),
    gettext_noop(
        "Build at most %(per_row_limit)s MiB per row: lower the length or count argument, or "
        "compute the value in the client."
    ),
)
KEY_TOO_LARGE = template(
    "value-too-large.key",
    gettext_noop(
        "%(text)s builds about %(per_row)s MiB per row and is a key of %(key)s, so the engine "
        "keeps it for every one of about %(rows)s rows: %(size)s MiB, over the limit of "
        "%(limit)s MiB."
    ),
    gettext_noop(
        "Sort or group by the column itself, not by a value built from it, or filter to fewer "
        "rows than %(max_rows)s."
    ),
)
WINDOW_TOO_LARGE = template(
    "value-too-large.window",
    gettext_noop(
        "%(text)s builds a value of up to %(size)s MiB for every row of its window, and DuckDB "
        "builds %(rows)s of them at a time: %(total)s MiB, over the limit of %(limit)s MiB."
    ),
    gettext_noop(
        "Aggregate with GROUP BY instead of OVER (...), or bound the window's frame (e.g. ROWS "
        "BETWEEN 10 PRECEDING AND CURRENT ROW) so that each value stays under "
        "%(per_row_limit)s MiB."
    ),
)


def generators(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """Size every generator and builder; refuse the unknown and the too large."""
    totals = built_values(context)
    faults: dict[int, tuple[exp.Expr, Finding]] = {}
    builders = ANONYMOUS_BUILDERS.get(context.engine, {})
    nodes: dict[int, exp.Expr] = {}
    for node in context.parsed_nodes_of((*GENERATOR_CLASSES, *BUILDER_CLASSES, exp.Anonymous)):
        if not isinstance(node, exp.Anonymous) or node.name.lower() in builders:
            nodes[id(node)] = node
    for node in nodes.values():
        _judge(node, context, totals, faults)
    _judge_combined(nodes, context, totals, faults)
    for with_ in context.parsed_nodes(exp.With):
        if with_.args.get("recursive"):
            for cte in with_.expressions:
                _judge_recursion(cte, context, totals, faults)
    # Innermost faults only: drop a node with a faulty builder below it.
    outer: set[int] = set()
    for faulty, _ in faults.values():
        parent = faulty.parent
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
    totals.scalars[id(node)] = (node, size)


#: Nodes a built value flows up through into a larger value: functions (concat, list_value,
#: a function of the value), operators (``||``), brackets, casts, array literals.
_VALUE_PARENTS = (exp.Func, exp.Binary, exp.Unary, exp.Cast, exp.Array, exp.Tuple, exp.Lambda)


def _judge_combined(
    nodes: dict[int, exp.Expr],
    context: RuleContext,
    totals: BuiltValues,
    faults: dict[int, tuple[exp.Expr, Finding]],
) -> None:
    """``value-too-large`` for an expression that puts several built values together, each
    within the limit (``repeat('x', 2e8) || repeat('x', 2e8)``, ``[lpad(...), lpad(...)]``):
    the outermost expression above each builder is sized as a whole."""
    tops: dict[int, exp.Expr] = {}
    for node in nodes.values():
        if id(node) in faults:
            continue
        top = node
        while isinstance(top.parent, _VALUE_PARENTS) and not isinstance(top.parent, exp.AggFunc):
            top = top.parent
        if top is not node:
            tops[id(top)] = top
    limit = context.policy.max_bytes_built
    for top in tops.values():
        size = value_bytes(top, context.engine)
        if size is None:
            continue  # a builder of unknown size inside: refused on its own
        if size > limit:
            faults[id(top)] = (top, _too_big(top, _shown(top, context), size, context))
        else:
            totals.bytes_built = max(totals.bytes_built, size)
            totals.scalars[id(top)] = (top, size)


def _judge_recursion(
    cte: exp.CTE,
    context: RuleContext,
    totals: BuiltValues,
    faults: dict[int, tuple[exp.Expr, Finding]],
) -> None:
    parts = recursive_parts(cte)
    if parts is None:
        return
    policy = context.policy
    name = cte.alias_or_name
    at = cte.args.get("alias") or cte
    generating, rows, depth = recursion_rows(cte)
    if not generating:
        depth = float(policy.assumed_recursion_depth)
    elif rows is None:
        stops = limit_stops_reading(context.parsed, name.lower(), context)
        if stops or any(m.args.get("where") is None for m in parts[1]):
            # Both engines stop a recursion when a LIMIT reading it is reached; a member
            # without any WHERE is the ``unbounded-recursive-cte`` rule's.
            return
        finding = context.finding(
            "unbounded-generator",
            Severity.ERROR,
            UNBOUNDED_RECURSION(name=name, limit=f"{policy.max_generated_rows:,}"),
            at=at,
        )
        faults[id(cte)] = (cte, finding)
        return
    elif rows > policy.max_generated_rows:
        finding = context.finding(
            "generator-too-large",
            Severity.ERROR,
            RECURSION_TOO_LARGE(
                name=name, count=_count(rows), limit=f"{policy.max_generated_rows:,}"
            ),
            at=at,
        )
        faults[id(cte)] = (cte, finding)
        return
    else:
        totals.generated_rows += rows
    grown = recursion_value_bytes(cte, context.engine, depth, float(policy.max_bytes_built))
    if grown is not None:
        column, size = grown
        faults[id(cte)] = (
            cte,
            context.finding(
                "value-too-large",
                Severity.ERROR,
                RECURSION_GROWS(
                    name=name,
                    column=column,
                    size=_mib(size),
                    steps=f"{depth:,.0f}",
                    limit=f"{policy.max_bytes_built / MIB:,.0f}",
                ),
                at=at,
            ),
        )


def _count(rows: float) -> Text:
    """A row count for a message (an overflowing constant is inf)."""
    return ABOUT(number=f"{rows:,.0f}") if rows < 1e18 else MORE_THAN_1E18()


def _mib(size: float) -> Text:
    """Bytes as MiB for a message (an overflowing constant is inf)."""
    return ABOUT(number=f"{size / MIB:,.0f}") if size < 1e18 else MORE_THAN_1E12()


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
    """The call as the SQL writes it (sqlglot's print otherwise), cut to 80 characters."""
    text = _written_call(node, context) or context.sql_of(node)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _written_call(node: exp.Expr, context: RuleContext) -> str | None:
    """The text of a function call from its name to its closing parenthesis, or None."""
    if not isinstance(node, exp.Func):
        return None
    offset = _call_offset(node, context)
    if offset is None or not _NAME.match(context.sql, offset):
        return None
    depth = 0
    for token in context.tokens:
        if token.start < offset:
            continue
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return context.sql[offset : token.end + 1]
    return None


def _unbounded(node: exp.Expr, name: str, text: str, context: RuleContext) -> Finding:
    limit = context.policy.max_generated_rows
    if isinstance(node, GENERATOR_CLASSES):
        message = UNBOUNDED_ROWS
    elif name in ("printf", "format"):
        message = UNBOUNDED_FORMAT
    else:
        message = UNBOUNDED_SIZE
    return context.finding(
        "unbounded-generator",
        Severity.ERROR,
        message(
            name=name,
            text=text,
            limit=f"{limit:,}",
            mib=f"{context.policy.max_bytes_built // MIB:,}",
        ),
        at=_at(node, context),
    )


def _too_many(node: exp.Expr, text: str, count: float, context: RuleContext) -> Finding:
    limit = context.policy.max_generated_rows
    return context.finding(
        "generator-too-large",
        Severity.ERROR,
        GENERATOR_TOO_LARGE(text=text, count=_count(count), limit=f"{limit:,}"),
        at=_at(node, context),
    )


def _too_big(node: exp.Expr, text: str, size: float, context: RuleContext) -> Finding:
    limit = context.policy.max_bytes_built
    return context.finding(
        "value-too-large",
        Severity.ERROR,
        VALUE_TOO_LARGE(text=text, size=_mib(size), limit=f"{limit / MIB:,.0f}"),
        at=_at(node, context),
    )


#: Rows DuckDB evaluates an expression for at once (its vector size): a value built from a
#: column is built for this many rows before any of them moves on.
DUCKDB_VECTOR_ROWS = 2048


def aggregate_values(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """``value-too-large`` for an aggregate that builds one value of more rows than fit
    (``string_agg``, ``list``, ``array_agg``, ``json_agg``... over a generator or a table),
    for a value built from a column for a whole DuckDB vector of rows at once
    (``repeat(l_comment, 1000000)``: 2,048 values at a time), and for one kept for every row
    as a sort, group, DISTINCT or window key."""
    totals = built_values(context)
    limit = context.policy.max_bytes_built
    findings: list[Finding] = []
    findings += _built_per_row(context, totals)
    findings += _built_from_columns(context, totals)
    for node, size, values in aggregate_builders(context):
        totals.aggregates[id(node)] = (node, size)
        totals.bytes_built = max(totals.bytes_built, size)
        batch = min(values, float(DUCKDB_VECTOR_ROWS)) if context.engine == "duckdb" else 1.0
        if size <= limit < size * batch:
            findings.append(_window_vector(node, size, batch, context))
        elif size > limit:
            name = written_name(node, context)
            findings.append(
                context.finding(
                    "value-too-large",
                    Severity.ERROR,
                    AGGREGATE_TOO_LARGE(
                        text=_shown(node, context),
                        size=_mib(size),
                        limit=f"{limit / MIB:,.0f}",
                        name=name,
                    ),
                    at=_at(node, context),
                )
            )
    return findings


def _built_per_row(context: RuleContext, totals: BuiltValues) -> list[Finding]:
    """The values built from a column (once per row; a constant is folded once), re-sized
    with the catalog's column widths: on DuckDB, built for a vector of up to
    ``DUCKDB_VECTOR_ROWS`` rows together; on both engines, kept for every row when they are
    a sort, group, DISTINCT or window key (judged against ``max_result_bytes``, as a result
    of that size would be)."""
    limit = context.policy.max_bytes_built
    findings: list[Finding] = []
    refined = 0.0
    sized = set(totals.scalars)
    for node, _ in list(totals.scalars.values()):
        if node.find(exp.Column) is None:
            continue  # a constant: folded once
        if _has_ancestor_in(node, sized):
            continue  # part of a larger value: that one is judged
        scope = enclosing_scope(node, context)
        if scope is None:
            continue
        size = value_bytes(node, context.engine, column_width(scope, context)) or 0.0
        refined = max(refined, size)
        rows = scope_input_rows(scope, context)
        batch = min(rows, float(DUCKDB_VECTOR_ROWS))
        key = _key_clause(node)
        if context.engine == "duckdb" and size * batch > limit:
            findings.append(
                context.finding(
                    "value-too-large",
                    Severity.ERROR,
                    VECTOR_TOO_LARGE(
                        text=_shown(node, context),
                        per_row=f"{size / MIB:,.1f}",
                        batch=f"{batch:,.0f}",
                        size=_mib(size * batch),
                        limit=f"{limit / MIB:,.0f}",
                        per_row_limit=f"{limit / batch / MIB:,.2f}",
                    ),
                    at=_at(node, context),
                )
            )
        elif key and size * rows > context.policy.max_result_bytes:
            findings.append(_kept_for_every_row(node, key, size, rows, context))
    if refined:
        totals.bytes_built = max(
            [refined]
            + [size for n, size in totals.scalars.values() if n.find(exp.Column) is None]
            + [size for _, size in totals.aggregates.values()]
        )
    return findings


def _built_from_columns(context: RuleContext, totals: BuiltValues) -> list[Finding]:
    """``value-too-large`` for a projection that puts together values a CTE or derived table
    built (``WITH c AS (SELECT range(5000000) AS l) SELECT list_concat(l, l, l, l, l, l, l)
    FROM c``): no builder is in the projection itself, so the gate rule cannot see it. Only
    looked for when the statement builds something."""
    if not totals.scalars:
        return []
    limit = context.policy.max_bytes_built
    sized = set(totals.scalars)
    findings: list[Finding] = []
    for scope in context.scopes:
        select = scope.expression
        if not isinstance(select, exp.Select):
            continue
        widths = column_width(scope, context)
        for projection in select.expressions:
            value = projection.unalias()
            if isinstance(value, exp.Column) or id(value) in sized:
                continue  # a column passed on, or a builder judged already
            if value.find(exp.Column) is None or _has_descendant_in(value, sized):
                continue
            size = value_bytes(value, context.engine, widths)
            if size is not None and size > limit:
                findings.append(_too_big(value, _shown(value, context), size, context))
            elif size is not None:
                totals.bytes_built = max(totals.bytes_built, size)
    return findings


def _has_descendant_in(node: exp.Expr, ids: set[int]) -> bool:
    return any(id(sub) in ids for sub in node.walk())


def _key_clause(node: exp.Expr) -> str:
    """``ORDER BY``, ``GROUP BY``, ``DISTINCT`` or ``a window`` when ``node`` is a key the
    engine keeps for every row (sorts, hashes), else an empty string."""
    child, parent = node, node.parent
    while parent is not None and not isinstance(parent, exp.Select):
        if isinstance(parent, exp.Order):
            return "ORDER BY"
        if isinstance(parent, exp.Group):
            return "GROUP BY"
        if isinstance(parent, exp.Window) and child.arg_key in ("partition_by", "order"):
            return "a window"
        child, parent = parent, parent.parent
    if not isinstance(parent, exp.Select) or child.arg_key != "expressions":
        return ""
    if parent.args.get("distinct"):
        return "DISTINCT"
    if parent.args.get("group") is not None and child.find(exp.AggFunc) is None:
        return "GROUP BY"  # a plain projection of a grouped SELECT is one of its keys
    order = parent.args.get("order")
    if order is not None:
        position = str(parent.expressions.index(child) + 1)
        name = child.alias_or_name.lower()
        for ordered in order.expressions:
            key = ordered.this
            by_position = isinstance(key, exp.Literal) and key.name == position
            if by_position or (isinstance(key, exp.Column) and key.name.lower() == name):
                return "ORDER BY"
    return ""


def _kept_for_every_row(
    node: exp.Expr, key: str, size: float, rows: float, context: RuleContext
) -> Finding:
    limit = context.policy.max_result_bytes
    return context.finding(
        "value-too-large",
        Severity.ERROR,
        KEY_TOO_LARGE(
            text=_shown(node, context),
            per_row=f"{size / MIB:,.2f}",
            key=key,
            rows=f"{rows:,.0f}",
            size=_mib(size * rows),
            limit=f"{limit / MIB:,.0f}",
            max_rows=f"{limit / max(size, 1.0):,.0f}",
        ),
        at=_at(node, context),
    )


def _has_ancestor_in(node: exp.Expr, ids: set[int]) -> bool:
    parent = node.parent
    while parent is not None:
        if id(parent) in ids:
            return True
        parent = parent.parent
    return False


def _window_vector(node: exp.Expr, size: float, rows: float, context: RuleContext) -> Finding:
    limit = context.policy.max_bytes_built
    return context.finding(
        "value-too-large",
        Severity.ERROR,
        WINDOW_TOO_LARGE(
            text=_shown(node, context),
            size=_mib(size),
            rows=f"{rows:,.0f}",
            total=_mib(size * rows),
            limit=f"{limit / MIB:,.0f}",
            per_row_limit=f"{limit / rows / MIB:,.2f}",
        ),
        at=_at(node, context),
    )
