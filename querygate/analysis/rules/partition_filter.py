"""Partition filters.

``missing-partition-filter`` (error): a table that requires a partition filter is read without
any predicate on its partition column.
``unprunable-partition-filter``: the partition column is only compared inside a function or
cast (``date_trunc('day', ts) = ...``, ``CAST(ts AS DATE) = ...``, ``year(ts) = 2024``), which
the engine cannot use to skip partitions. Error on a table that requires a filter, else warn;
the suggestion is the equivalent range on the bare column.
"""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.context import RuleContext
from querygate.analysis.estimate import scope_conjuncts, table_reads
from querygate.analysis.findings import Finding, Severity, gettext_noop, template
from querygate.analysis.predicates import compared_column

_DAY_WRAPPERS = (exp.Cast, exp.TryCast, exp.TsOrDsToDate, exp.Date, exp.DateStrToDate)
_TRUNCS = (exp.DateTrunc, exp.TimestampTrunc, exp.DatetimeTrunc)


MISSING_PARTITION_FILTER = template(
    "missing-partition-filter",
    gettext_noop(
        "%(table)s is partitioned by %(column)s and requires a filter on it; without one every "
        "partition is read."
    ),
    gettext_noop(
        "Add a range on the partition column, e.g. WHERE %(column)s >= DATE '2024-01-01' AND "
        "%(column)s < DATE '2024-02-01'."
    ),
)
_UNPRUNABLE = gettext_noop(
    "%(predicate)s wraps the partition column %(column)s in a function, so no partition can "
    "be skipped."
)
UNPRUNABLE = template(
    "unprunable-partition-filter",
    _UNPRUNABLE,
    gettext_noop("Compare the bare column with a range instead: %(rewrite)s."),
)
UNPRUNABLE_NO_REWRITE = template(
    "unprunable-partition-filter.no-rewrite",
    _UNPRUNABLE,
    gettext_noop("Compare the bare column %(column)s with constants (a range)."),
)


def partition_filter(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """Findings for partitioned tables read without a prunable partition predicate."""
    findings: list[Finding] = []
    for read in table_reads(context):
        partition = {c.lower() for c in read.stats.partition_columns}
        if not partition:
            continue
        alias = read.table.alias_or_name
        sargable, wrapped = False, []
        for predicate in scope_conjuncts(read.scope, context):
            sides = compared_column(predicate)
            if sides is None:
                continue
            target = sides[0].unnest()
            columns = [c for c in target.find_all(exp.Column) if c.table == alias]
            if not any(c.name.lower() in partition for c in columns):
                continue
            if isinstance(target, exp.Column):
                sargable = True
            else:
                wrapped.append(predicate.unnest())
        required = read.stats.requires_partition_filter
        alias = alias if len(read.scope.selected_sources) > 1 else ""
        if not sargable and wrapped:
            severity = Severity.ERROR if required else Severity.WARN
            findings += [_unprunable(p, severity, alias, context) for p in wrapped]
        elif not sargable and required:
            findings.append(_missing(read.table, alias, sorted(partition)[0], context))
    return findings


def _missing(table: exp.Table, alias: str, column: str, context: RuleContext) -> Finding:
    column = f"{alias}.{column}" if alias else column
    return context.finding(
        "missing-partition-filter",
        Severity.ERROR,
        MISSING_PARTITION_FILTER(table=table.name, column=column),
        at=table,
    )


def _unprunable(
    predicate: exp.Expr, severity: Severity, alias: str, context: RuleContext
) -> Finding:
    """The finding for a wrapped partition column; ``alias`` qualifies it when not empty."""
    sides = compared_column(predicate)
    assert sides is not None  # partition_filter only passes comparisons here
    wrapper, value = sides
    column = next(iter(wrapper.find_all(exp.Column)))
    bare = exp.column(column.name, table=alias or None)
    rewrite = sargable_rewrite(predicate, wrapper.unnest(), bare, value, context.dialect)
    return context.finding(
        "unprunable-partition-filter",
        severity,
        (UNPRUNABLE if rewrite else UNPRUNABLE_NO_REWRITE)(
            predicate=context.sql_of(predicate), column=column.name, rewrite=rewrite
        ),
        at=predicate,
    )


def sargable_rewrite(
    predicate: exp.Expr,
    wrapper: exp.Expr,
    column: exp.Column,
    value: exp.Expr,
    dialect: str,
) -> str | None:
    """The range on the bare column equivalent to ``wrapper(column) <op> value``, or None.

    >>> import sqlglot
    >>> p = sqlglot.parse_one("CAST(ts AS DATE) = DATE '2024-01-01'", read="duckdb")
    >>> sargable_rewrite(p, p.left, p.left.this, p.right, "duckdb")
    "ts >= CAST('2024-01-01' AS DATE) AND ts < CAST('2024-01-01' AS DATE) + INTERVAL '1' DAY"
    """
    unit = _unit(wrapper)
    col = column.sql(dialect=dialect)
    if unit == "YEAR" and isinstance(value, exp.Literal) and not value.is_string:
        year = int(value.name)
        start, end = f"DATE '{year}-01-01'", f"DATE '{year + 1}-01-01'"
    elif unit is not None and value is not predicate:
        start = value.sql(dialect=dialect)
        step = exp.Interval(this=exp.Literal.string("1"), unit=exp.Var(this=unit))
        end = f"{start} + {step.sql(dialect=dialect)}"
    else:
        return None
    if isinstance(predicate, exp.EQ):
        return f"{col} >= {start} AND {col} < {end}"
    ops: dict[type[exp.Expr], str] = {
        exp.GTE: f"{col} >= {start}",
        exp.LT: f"{col} < {start}",
        exp.GT: f"{col} >= {end}",
    }
    ops[exp.LTE] = f"{col} < {end}"
    return ops.get(type(predicate))


def _unit(wrapper: exp.Expr) -> str | None:
    if isinstance(wrapper, _DAY_WRAPPERS):
        to = wrapper.args.get("to")
        is_date = to is None or to.is_type(exp.DataType.Type.DATE)
        return "DAY" if is_date else None
    if isinstance(wrapper, _TRUNCS):
        unit = wrapper.args.get("unit")
        return unit.name.upper() if unit is not None else None
    if isinstance(wrapper, exp.Year):
        return "YEAR"
    if isinstance(wrapper, exp.Extract) and wrapper.this.name.upper() == "YEAR":
        return "YEAR"
    return None
