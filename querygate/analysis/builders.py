"""Generators and value builders: how many rows a generator makes and how many bytes an
expression builds, worked out from its arguments. Pure functions of the parsed tree.

A **generator** makes rows or list elements out of nothing: DuckDB ``range`` and
``generate_series`` (a list as a scalar, rows in FROM; sqlglot's ``GenerateSeries``),
PostgreSQL ``generate_series`` (rows, in FROM or the SELECT list; ``ExplodingGenerateSeries``)
and ``GenerateDateArray``. Its size is ``(end - start) / step`` (+1 when the end is included),
from numbers, dates and timestamps with an interval step.

A **builder** makes one large value out of small arguments: ``repeat`` (of a string or a
list), ``lpad`` / ``rpad`` (``Pad``), ``space``, ``printf`` / ``format`` with a width or
precision in the format string, ``replace`` / ``regexp_replace`` (each character may become
the replacement), DuckDB ``list_resize`` / ``array_resize``, PostgreSQL
``array_fill``, and the scalar list generators above (8 bytes an element). Which plain
(anonymous to sqlglot) functions build values is per engine (``ANONYMOUS_BUILDERS``), as the
allow-lists in ``allowlist.py`` are. The aggregates that build one value out of their input
rows (``string_agg``, ``list``, ``array_agg``, ``json_agg``...: ``AGGREGATE_BUILDER_CLASSES``
and ``ANONYMOUS_AGGREGATE_BUILDERS``) are sized by the estimate, which knows the rows.

A size argument is judged by ``constant``: literals, casts of literals, signs and the
arithmetic ``+ - * / // % ^ **`` of constants (``1e9``, ``10*1000*1000``, ``'5'::int``).
Anything else (a column, a subquery, a parameter, another generator) is **unknown**, and the
rule ``generators`` refuses it: the size of the value cannot be known before it runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime

from sqlglot import exp

#: Bytes an element of a generated list (a BIGINT, a DATE, a TIMESTAMP) takes.
ELEMENT_BYTES = 8
#: Bytes assumed for a value whose width is unknown (a column before its catalog is known,
#: the result of an arbitrary function).
UNKNOWN_VALUE_BYTES = 64

#: Generator classes: rows (in FROM, PostgreSQL's SELECT list) or list elements.
GENERATOR_CLASSES: tuple[type[exp.Expr], ...] = (
    exp.GenerateSeries,
    exp.ExplodingGenerateSeries,
    exp.GenerateDateArray,
)
#: Builder classes other than the generators.
BUILDER_CLASSES: tuple[type[exp.Expr], ...] = (
    exp.Repeat,
    exp.Pad,
    exp.Space,
    exp.Format,
    exp.Replace,
    exp.RegexpReplace,
)

#: Plain functions that build a value from a size argument, per engine (lower case):
#: name -> the index of the size argument (``array_fill``: an array of dimensions).
ANONYMOUS_BUILDERS: dict[str, dict[str, int]] = {
    "duckdb": {"list_resize": 1, "array_resize": 1, "printf": 0, "format": 0},
    "postgres": {"array_fill": 1, "format": 0},
}
#: The format-string builders among ``ANONYMOUS_BUILDERS`` (size from the format string).
FORMAT_FUNCTIONS = frozenset({"printf", "format"})

#: Aggregate classes that build one value (a string, list or JSON document) of their rows.
AGGREGATE_BUILDER_CLASSES: tuple[type[exp.Expr], ...] = (
    exp.GroupConcat,
    exp.ArrayAgg,
    exp.ArrayConcatAgg,
    exp.ArrayUniqueAgg,
    exp.JSONArrayAgg,
    exp.JSONObjectAgg,
    exp.JSONBObjectAgg,
)
#: Plain aggregate functions that build one value of their rows, per engine (lower case).
ANONYMOUS_AGGREGATE_BUILDERS: dict[str, frozenset[str]] = {
    "duckdb": frozenset({"histogram", "json_group_array", "json_group_object", "string_agg"}),
    "postgres": frozenset({"json_agg", "jsonb_agg", "xmlagg", "string_agg", "json_object_agg"}),
}

_SECONDS = {
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 7 * 86400.0,
    # The shortest month, quarter and year: the most rows a calendar step can make.
    "month": 28 * 86400.0,
    "quarter": 89 * 86400.0,
    "year": 365 * 86400.0,
    "decade": 3652 * 86400.0,
    "century": 36524 * 86400.0,
    "millennium": 365242 * 86400.0,
}
_INTERVAL_TEXT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*$")
_UNIT_ALIASES = {"us": "microsecond", "ms": "millisecond", "sec": "second", "min": "minute",
                 "mins": "minute", "hr": "hour", "h": "hour", "d": "day", "mon": "month",
                 "y": "year", "yr": "year"}  # fmt: skip
#: Widths and precisions in printf-style (``%10d``, ``%.20f``, ``%*d``) and fmt-style
#: (``{:>10}``, ``{:.{}f}``) format strings.
_PRINTF_SPEC = re.compile(r"%(?:\d+\$)?[-+ #0']*(\*(?:\d+\$)?|\d+)?(?:\.(\*|\d+))?")
_FMT_SPEC = re.compile(r"\{[^{}]*:([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_DIGITS = re.compile(r"\d+")

_TEMPORAL_TYPES = frozenset(
    {
        exp.DType.DATE,
        exp.DType.DATETIME,
        exp.DType.TIMESTAMP,
        exp.DType.TIMESTAMPTZ,
        exp.DType.TIMESTAMPNTZ,
        exp.DType.TIMESTAMPLTZ,
    }
)


def constant(node: exp.Expr | None) -> float | None:
    """The numeric value of a constant expression, or None when it is not one.

    >>> import sqlglot
    >>> constant(sqlglot.parse_one("10 * 1000 * 1000"))
    10000000.0
    >>> constant(sqlglot.parse_one("CAST(1e9 AS BIGINT)")) , constant(sqlglot.parse_one("x + 1"))
    (1000000000.0, None)
    """
    if node is None:
        return None
    if isinstance(node, exp.Literal):
        try:
            return float(node.this)
        except ValueError:
            return None
    if isinstance(node, (exp.Paren, exp.Cast)):  # TryCast is a Cast
        if isinstance(node, exp.Cast) and node.to.this in _TEMPORAL_TYPES:
            return None
        return constant(node.this)
    if isinstance(node, exp.Neg):
        value = constant(node.this)
        return -value if value is not None else None
    if isinstance(node, exp.Binary):
        operator = _ARITHMETIC.get(type(node))
        if operator is None:
            return None
        left, right = constant(node.this), constant(node.expression)
        if left is None or right is None:
            return None
        try:
            return operator(left, right)
        except (ZeroDivisionError, ValueError):
            return None
        except OverflowError:
            return math.inf
    return None


def _pow(a: float, b: float) -> float:
    return float(a**b) if abs(b) < 4096 else math.inf


_ARITHMETIC: dict[type[exp.Expr], Callable[[float, float], float]] = {
    exp.Add: lambda a, b: a + b,
    exp.Sub: lambda a, b: a - b,
    exp.Mul: lambda a, b: a * b,
    exp.Div: lambda a, b: a / b,
    exp.IntDiv: lambda a, b: float(a // b),
    exp.Mod: lambda a, b: math.fmod(a, b),
    exp.Pow: _pow,
}


def _instant(node: exp.Expr | None) -> float | None:
    """Seconds since the epoch of a date or timestamp literal (``DATE '2024-01-01'``,
    ``'2024-01-01'::timestamp``), or None."""
    while isinstance(node, exp.Paren):
        node = node.this
    if not isinstance(node, exp.Cast) or node.to.this not in _TEMPORAL_TYPES:
        return None
    text = node.this
    if not isinstance(text, exp.Literal) or not text.is_string:
        return None
    try:
        value = datetime.fromisoformat(text.this.strip())
    except ValueError:
        return None
    return _naive_seconds(value.replace(tzinfo=None))


#: The current date or time: a generator between two of them (``current_date - 30`` and
#: ``current_date``) spans a constant length.
_NOW = (exp.CurrentDate, exp.CurrentTimestamp, exp.CurrentDatetime, exp.CurrentTime)
#: The same as plain functions (DuckDB's ``now()`` and friends are anonymous to sqlglot).
_NOW_FUNCTIONS = frozenset(
    {"now", "today", "get_current_timestamp", "get_current_time", "transaction_timestamp"}
)


def _moment(node: exp.Expr | None) -> tuple[float, bool] | None:
    """(seconds, whether relative to now) of a date or timestamp literal, the current date
    or time, or either plus or minus a constant interval (or whole days); None otherwise."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, _NOW) or (
        isinstance(node, exp.Anonymous) and node.name.lower() in _NOW_FUNCTIONS
    ):
        return 0.0, True
    if isinstance(node, (exp.Add, exp.Sub)):
        base = _moment(node.this)
        shift = interval_seconds(node.expression)
        if shift is None:
            days = constant(node.expression)
            shift = days * 86400.0 if days is not None else None
        if base is None or shift is None:
            return None
        return base[0] + (shift if isinstance(node, exp.Add) else -shift), base[1]
    seconds = _instant(node)
    return (seconds, False) if seconds is not None else None


def _naive_seconds(value: datetime) -> float:
    return (value - datetime(1970, 1, 1)).total_seconds()


def interval_seconds(node: exp.Expr | None) -> float | None:
    """The length in seconds of an interval literal (``INTERVAL 1 DAY``, ``INTERVAL
    '2 hours'``, ``'1 day'::interval``), months and years at their shortest; or None."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Interval):
        unit = node.args.get("unit")
        amount = node.this
        if unit is not None:
            count = constant(amount) if not isinstance(amount, exp.Literal) else _number(amount)
            return _unit_seconds(count, unit.name)
        return _interval_text(amount.name if isinstance(amount, exp.Literal) else None)
    if isinstance(node, exp.Cast) and node.to.this == exp.DType.INTERVAL:
        return _interval_text(node.this.name if isinstance(node.this, exp.Literal) else None)
    return None


def _number(literal: exp.Literal) -> float | None:
    try:
        return float(literal.this)
    except ValueError:
        return None


def _interval_text(text: str | None) -> float | None:
    match = _INTERVAL_TEXT.match(text.lower()) if text else None
    return _unit_seconds(float(match.group(1)), match.group(2)) if match else None


def _unit_seconds(count: float | None, unit: str) -> float | None:
    name = unit.lower()
    name = _UNIT_ALIASES.get(name, name)
    if name not in _SECONDS and name.endswith("s"):
        name = name[:-1]
    scale = _SECONDS.get(name)
    return count * scale if count is not None and scale is not None else None


def generator_count(func: exp.Expr) -> float | None:
    """How many rows (or list elements) a generator makes, or None when its bounds are not
    constants. A zero step makes none (both engines raise an error); a step away from the
    end makes none.

    >>> import sqlglot
    >>> generator_count(sqlglot.parse_one("SELECT range(10)", read="duckdb").selects[0])
    10.0
    >>> series = sqlglot.parse_one("SELECT generate_series(1, 10, 3)", read="postgres")
    >>> generator_count(series.selects[0])
    4.0
    """
    start, end, step = func.args.get("start"), func.args.get("end"), func.args.get("step")
    inclusive = not func.args.get("is_end_exclusive")
    low, high = constant(start), constant(end)
    if low is not None and high is not None:
        stride = constant(step) if step is not None else 1.0
    else:
        first, last = _moment(start), _moment(end)
        if first is None or last is None or first[1] != last[1]:
            return None  # not both literals, or not both relative to now
        low, high = first[0], last[0]
        stride = interval_seconds(step) if step is not None else 86400.0
    if stride is None:
        return None
    return _series_length(low, high, stride, inclusive=inclusive)


def _series_length(low: float, high: float, stride: float, *, inclusive: bool) -> float:
    if stride == 0 or not all(math.isfinite(v) for v in (low, high, stride)):
        return 0.0 if stride == 0 else math.inf
    steps = (high - low) / stride
    if steps < 0:
        return 0.0
    if inclusive:
        return float(math.floor(steps + 1e-9) + 1)
    return float(math.ceil(steps - 1e-9)) if steps > 0 else 0.0


def list_length(node: exp.Expr | None) -> float | None:
    """The number of elements of a list-valued expression UNNEST reads: an array literal,
    a generator, a repeated list; None when unknown (a column: bounded by the data)."""
    while isinstance(node, (exp.Paren, exp.Cast)):
        node = node.this
    if isinstance(node, exp.Array):
        return float(len(node.expressions))
    if isinstance(node, GENERATOR_CLASSES):
        return generator_count(node)
    if isinstance(node, exp.Repeat) and _is_list(node.this):
        inner, times = list_length(node.this), constant(node.args.get("times"))
        return inner * max(times, 0.0) if inner is not None and times is not None else None
    return None


def _is_list(node: exp.Expr | None) -> bool:
    return isinstance(node, (exp.Array, exp.GenerateSeries, exp.GenerateDateArray)) or (
        isinstance(node, exp.Repeat) and _is_list(node.this)
    )


def is_builder(node: exp.Expr, engine: str) -> bool:
    """True for a generator or a builder (``engine``'s plain builders included)."""
    if isinstance(node, (*GENERATOR_CLASSES, *BUILDER_CLASSES)):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() in ANONYMOUS_BUILDERS.get(
        engine, {}
    )


ColumnWidth = Callable[[exp.Column], float | None]


def value_bytes(
    node: exp.Expr | None, engine: str, column_width: ColumnWidth | None = None
) -> float | None:
    """Bytes of the value ``node`` evaluates to, or None when a builder in it has a size
    argument that is not constant. Literals count their text, builders what they build,
    concatenations their parts; a column its catalog width (``column_width``) or
    ``UNKNOWN_VALUE_BYTES``; any other function the largest of its arguments (a function of
    a built value is about as large), at least ``ELEMENT_BYTES``."""
    if node is None:
        return 0.0
    if isinstance(node, exp.Literal):
        return float(len(node.this.encode())) if node.is_string else float(ELEMENT_BYTES)
    if isinstance(node, exp.Column):
        width = column_width(node) if column_width is not None else None
        return float(width) if width is not None else float(UNKNOWN_VALUE_BYTES)
    if is_builder(node, engine):
        return built_bytes(node, engine, column_width)
    if isinstance(node, exp.ArrayToString):
        # array_to_string(list, separator): each element's text and a separator.
        elements = list_length(node.this)
        whole = value_bytes(node.this, engine, column_width)
        separator = value_bytes(node.expression, engine, column_width)
        if whole is None or separator is None:
            return None
        return whole + (elements if elements is not None else whole / ELEMENT_BYTES) * separator
    if isinstance(node, exp.Transform) and isinstance(node.expression, exp.Lambda):
        # list_transform(list, x -> f(x)): one f(x) per element of the list.
        elements = list_length(node.this)
        if elements is None:
            whole = value_bytes(node.this, engine, column_width)
            elements = whole / ELEMENT_BYTES if whole is not None else None
        each = value_bytes(node.expression.this, engine, column_width)
        if elements is None or each is None:
            return None
        return elements * max(each, float(ELEMENT_BYTES))
    parts = [value_bytes(child, engine, column_width) for child in node.iter_expressions()]
    if any(p is None for p in parts):
        return None
    sizes = [p for p in parts if p is not None]
    if isinstance(node, _SUMS):
        return float(sum(sizes))
    return max([float(ELEMENT_BYTES), *sizes])


#: Expressions whose value holds all their arguments' values (concatenations, lists).
_SUMS = (
    exp.Array,
    exp.Concat,
    exp.ConcatWs,
    exp.DPipe,
    exp.ArrayConcat,
    exp.Tuple,
    exp.Overlay,
)


def built_bytes(
    node: exp.Expr, engine: str, column_width: ColumnWidth | None = None
) -> float | None:
    """Bytes a generator or builder (``is_builder``) builds, or None when its size argument
    is not constant."""
    if isinstance(node, GENERATOR_CLASSES):
        count = generator_count(node)
        return count * ELEMENT_BYTES if count is not None else None
    if isinstance(node, exp.Repeat):
        times = constant(node.args.get("times"))
        unit = value_bytes(node.this, engine, column_width)
        return _times(unit, times)
    if isinstance(node, exp.Pad):
        length = constant(node.expression)
        fill = node.args.get("fill_pattern")
        wide = any(_non_ascii(n) for n in (node.this, fill) if isinstance(n, exp.Literal))
        return _times(4.0 if wide else 1.0, length)
    if isinstance(node, exp.Space):
        return _times(1.0, constant(node.this))
    if isinstance(node, exp.Format):
        return _format_bytes(node.this, node.expressions, engine, column_width)
    if isinstance(node, (exp.Replace, exp.RegexpReplace)):
        # Every match (every character, for a one-character or empty pattern) may become
        # the replacement: replace(repeat('a', 1e5), 'a', repeat('b', 1e4)) is 1e9 bytes.
        text = value_bytes(node.this, engine, column_width)
        replacement = value_bytes(node.args.get("replacement"), engine, column_width)
        if text is None or replacement is None:
            return None
        extra = 1.0 if isinstance(node, exp.RegexpReplace) else 0.0
        return text * max(1.0, replacement + extra)
    name = node.name.lower()
    args = node.expressions
    if name in FORMAT_FUNCTIONS:
        return _format_bytes(args[0] if args else None, args[1:], engine, column_width)
    index = ANONYMOUS_BUILDERS.get(engine, {}).get(name, 0)
    size = args[index] if len(args) > index else None
    if name == "array_fill":  # array_fill(value, ARRAY[d1, d2...]): the product of dims
        dims = [constant(d) for d in size.expressions] if isinstance(size, exp.Array) else [None]
        if any(d is None for d in dims):
            return None
        return _times(float(ELEMENT_BYTES), math.prod(d for d in dims if d is not None))
    return _times(float(ELEMENT_BYTES), constant(size))


def _times(unit: float | None, count: float | None) -> float | None:
    if unit is None or count is None:
        return None
    return unit * max(count, 0.0)


def _non_ascii(literal: exp.Literal) -> bool:
    return not str(literal.this).isascii()


def _format_bytes(
    pattern: exp.Expr | None,
    args: list[exp.Expr],
    engine: str,
    column_width: ColumnWidth | None,
) -> float | None:
    """Bytes ``printf`` / ``format`` builds: the format string, the largest width or
    precision in it (a ``*`` or ``{}`` width is read from the arguments, which must then be
    constants) and the arguments' own sizes. A format string that is not a literal: None."""
    if not isinstance(pattern, exp.Literal) or not pattern.is_string:
        return None
    text = pattern.this
    widths: list[float] = []
    dynamic = False
    for match in _PRINTF_SPEC.finditer(text):
        for group in match.groups():
            if group and group.startswith("*"):
                dynamic = True
            elif group:
                widths.append(float(group))
    for match in _FMT_SPEC.finditer(text):
        spec = match.group(1)
        dynamic = dynamic or "{" in spec
        widths += [float(d) for d in _DIGITS.findall(spec)]
    sizes = [value_bytes(a, engine, column_width) for a in args]
    if any(s is None for s in sizes):
        return None
    if dynamic:
        # Which argument a ``*`` reads is not worked out: every argument must be constant.
        values = [constant(a) for a in args]
        if any(v is None for v in values):
            return None
        widths += [abs(v) for v in values if v is not None]
    return float(len(text.encode())) + sum(s for s in sizes if s is not None) + sum(widths)


#: Comparisons that stop a counter: (operator, the counter on its left) -> the direction the
#: counter must step in for the comparison to become false (+1 up, -1 down, 0 either).
_STOPS: dict[tuple[type[exp.Expr], bool], int] = {
    (exp.LT, True): 1,
    (exp.LTE, True): 1,
    (exp.GT, False): 1,
    (exp.GTE, False): 1,
    (exp.GT, True): -1,
    (exp.GTE, True): -1,
    (exp.LT, False): -1,
    (exp.LTE, False): -1,
    (exp.NEQ, True): 0,
    (exp.NEQ, False): 0,
}


def recursive_parts(cte: exp.CTE) -> tuple[list[exp.Expr], list[exp.Select]] | None:
    """(anchor parts, recursive members) of a recursive CTE's body: the parts of its UNION
    (ALL) chain, a member being a SELECT that reads the CTE; None when it has no member."""
    name = cte.alias_or_name.lower()
    parts: list[exp.Expr] = []
    pending: list[exp.Expr] = [cte.this]
    while pending:
        node = pending.pop()
        if isinstance(node, exp.Union):
            pending += [node.expression, node.this]  # left first
        else:
            parts.append(node)
    anchors: list[exp.Expr] = []
    members: list[exp.Select] = []
    for part in parts:
        reads = any(t.name.lower() == name and not t.db for t in part.find_all(exp.Table))
        if reads and isinstance(part, exp.Select):
            members.append(part)
        else:
            anchors.append(part)
    return (anchors, members) if members and anchors else None


def cte_column_names(cte: exp.CTE, anchor: exp.Expr) -> list[str]:
    """The CTE's column names: its column list, else its (first) anchor's projection names."""
    alias = cte.args.get("alias")
    names = [c.name.lower() for c in alias.columns] if alias is not None and alias.columns else []
    if names or not isinstance(anchor, exp.Select):
        return names
    return [p.alias_or_name.lower() for p in anchor.expressions]


def _anchor_values(anchor: exp.Expr) -> list[exp.Expr]:
    """The first row of an anchor: a SELECT's projections or a VALUES' first tuple."""
    if isinstance(anchor, exp.Select):
        source = anchor.args.get("from_")
        star = len(anchor.expressions) == 1 and isinstance(anchor.expressions[0], exp.Star)
        if star and source is not None and isinstance(source.this, exp.Values):
            return _anchor_values(source.this)  # VALUES (1), as sqlglot wraps it
        return [p.unalias() for p in anchor.expressions]
    if isinstance(anchor, exp.Values) and anchor.expressions:
        first = anchor.expressions[0]
        return list(first.expressions) if isinstance(first, exp.Tuple) else [first]
    if isinstance(anchor, exp.Subquery):
        return _anchor_values(anchor.this)
    return []


def recursion_rows(cte: exp.CTE) -> tuple[bool, float | None, float]:
    """(whether the recursive CTE ``cte`` generates its rows, the rows it makes per anchor
    row (None when nothing bounds them), its depth in steps (0 when unknown)).

    A generating recursion's members read only the CTE (once each) and generated sources
    (``range(10)``, VALUES): it makes rows out of nothing, like ``generate_series``. Each
    member must step a column by a constant (``SELECT n + 1 FROM t WHERE n < 1000``) with a
    constant bound on it in its WHERE, in the step's direction; a member that steps without
    one, or (under UNION ALL) does not step at all, repeats forever. The depth is the largest
    number of steps a member's bound allows; each step multiplies the rows by the members'
    fan-out (2 for two members, 10 for a member that also reads ``range(10)``). Anything
    else, e.g. a walk over a table's hierarchy, is (False, None, 0): bounded by the data,
    estimated by the caller."""
    parts = recursive_parts(cte)
    if parts is None:
        return False, None, 0.0
    anchors, members = parts
    name = cte.alias_or_name.lower()
    names = cte_column_names(cte, anchors[0])
    starts = _anchor_values(anchors[0])
    distinct = any(
        isinstance(u, exp.Union) and u.args.get("distinct") for u in cte.this.find_all(exp.Union)
    )
    depth = 0.0
    fan_out = 0.0
    for member in members:
        sources = _member_fan_out(member, name)
        if sources is None:
            return False, None, 0.0  # reads a table: bounded by its data
        fan_out += sources
        steps: list[float] = []
        stepping = False
        where = member.args.get("where")
        for position, projection in enumerate(member.expressions):
            column = names[position] if position < len(names) else ""
            counter = _counter_step(projection.unalias(), column)
            if counter is None:
                continue
            stepping = True
            start = constant(starts[position]) if position < len(starts) else None
            condition = where.this if where is not None else None
            bound = None
            if start is not None:
                bound = _bound(condition, column, start, *counter)
            if bound is not None:
                steps.append(bound)
        if steps:
            depth = max(depth, min(steps))
        elif stepping or not distinct:
            return True, None, 0.0  # nothing stops this member
    if not depth:  # UNION of members that do not step: stops when no new row comes
        return True, max(fan_out, 1.0), 1.0
    if fan_out <= 1.0:
        return True, depth, depth
    if math.isinf(fan_out):
        return True, math.inf, depth
    levels = min(depth, 4096.0)
    return True, (fan_out**levels - 1) / (fan_out - 1), depth


def _member_fan_out(member: exp.Select, name: str) -> float | None:
    """Rows each CTE row becomes in one step of ``member``: the product of its generated
    sources' rows (a CTE read twice grows without end: inf); None when it reads a table."""
    fan_out = 1.0
    reads = 0
    for table in member.find_all(exp.Table):
        if isinstance(table.this, GENERATOR_CLASSES):
            count = generator_count(table.this)
            fan_out *= count if count is not None else math.inf
        elif table.name.lower() == name and not table.db:
            reads += 1
        else:
            return None
    for values in member.find_all(exp.Values):
        fan_out *= max(len(values.expressions), 1)
    return math.inf if reads > 1 else fan_out


def recursion_value_bytes(
    cte: exp.CTE, engine: str, depth: float, limit: float
) -> tuple[str, float] | None:
    """(a column, its bytes) of a recursive CTE whose value grows past ``limit`` over
    ``depth`` steps (``s || s`` doubles each step, ``repeat(s, 3)`` triples it), or None.
    Each member's projection is sized from the column's size one step before."""
    parts = recursive_parts(cte)
    if parts is None:
        return None
    anchors, members = parts
    names = cte_column_names(cte, anchors[0])
    starts = _anchor_values(anchors[0])
    steps = int(min(depth, 10_000))
    for position, column in enumerate(names):
        first = starts[position] if position < len(starts) else None
        size = value_bytes(first, engine) if first is not None else float(UNKNOWN_VALUE_BYTES)
        if size is None:
            continue
        projections = [
            m.expressions[position].unalias() for m in members if position < len(m.expressions)
        ]
        for _ in range(steps):
            current = size

            def width(col: exp.Column, name: str = column, now: float = current) -> float | None:
                return now if col.name.lower() == name else None

            grown = [value_bytes(p, engine, width) for p in projections]
            size = max([current, *(g for g in grown if g is not None)])
            if size > limit or size == current:
                break
        if size > limit:
            return column, size
    return None


def _counter_step(value: exp.Expr, name: str) -> tuple[float, bool] | None:
    """(the step, whether it multiplies) of a projection that steps column ``name``:
    ``n + 1``, ``1 + n``, ``n - 1`` (adds) or ``n * 2``, ``2 * n`` (multiplies); else None."""
    if not isinstance(value, (exp.Add, exp.Sub, exp.Mul)):
        return None
    left, right = value.this, value.expression
    if isinstance(left, exp.Column) and left.name.lower() == name:
        step = constant(right)
    elif not isinstance(value, exp.Sub) and isinstance(right, exp.Column):
        step = constant(left) if right.name.lower() == name else None
    else:
        step = None
    if step is None:
        return None
    if isinstance(value, exp.Mul):
        return step, True
    return (-step if isinstance(value, exp.Sub) else step), False


def _bound(
    condition: exp.Expr | None, name: str, start: float, step: float, multiplies: bool = False
) -> float | None:
    """The rows a counter on column ``name`` (from ``start`` by ``step``) makes before a
    conjunct of ``condition`` stops it, or None when none does: ``n < 1000`` stops a counter
    stepping up, not one stepping down; ``n <> 1000`` only one that lands on 1000."""
    if multiplies:  # a geometric counter: an arithmetic one in logarithms
        if start <= 0 or step <= 0:
            return None
        start, step = math.log(start), math.log(step)
    pending = [condition] if condition is not None else []
    found: list[float] = []
    while pending:
        node = pending.pop()
        if isinstance(node, exp.And):
            pending += [node.this, node.expression]
        elif isinstance(node, exp.Paren):
            pending.append(node.this)
        elif isinstance(node, (exp.LT, exp.LTE, exp.GT, exp.GTE, exp.NEQ)):
            for column, other, left in ((node.this, node.expression, True),
                                        (node.expression, node.this, False)):  # fmt: skip
                if not (isinstance(column, exp.Column) and column.name.lower() == name):
                    continue
                value = constant(other)
                if multiplies and value is not None:
                    value = math.log(value) if value > 0 else None
                direction = _STOPS[(type(node), left)]
                if value is None or step == 0:
                    continue
                if direction == 0:  # <>: stops only on landing on the value exactly
                    steps = (value - start) / step
                    if steps >= 0 and math.isclose(steps, round(steps)):
                        found.append(round(steps) + 1.0)
                elif direction * step > 0:
                    found.append(max(_series_length(start, value, step, inclusive=True), 1.0))
    return min(found) if found else None
