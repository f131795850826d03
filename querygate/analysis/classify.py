"""Statement classification: what kind of statement a tree is, and whether it writes."""

from __future__ import annotations

from enum import StrEnum

from sqlglot import exp


class StatementKind(StrEnum):
    """Coarse statement classes; only ``select`` is read-only."""

    SELECT = "select"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    DDL = "ddl"
    OTHER = "other"


_DDL = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
_WRITES: tuple[tuple[type[exp.Expr], StatementKind], ...] = (
    (exp.Insert, StatementKind.INSERT),
    (exp.Merge, StatementKind.UPDATE),
    (exp.Update, StatementKind.UPDATE),
    (exp.Delete, StatementKind.DELETE),
)

_ANY_WRITE: tuple[type[exp.Expr], ...] = (*(c for c, _ in _WRITES), exp.Into, *_DDL)

#: Node types that make a query more than a read (a write, ``SELECT ... INTO``, DDL): a query
#: with none of them anywhere is a ``select``.
WRITE_NODE_TYPES = _ANY_WRITE


def statement_name(tree: exp.Expr) -> str:
    """The statement's keyword, upper case: ``SELECT``, ``COPY``, ``ATTACH``, ``LOAD``...

    >>> import sqlglot
    >>> statement_name(sqlglot.parse_one("SELECT 1 UNION SELECT 2"))
    'SELECT'
    """
    if isinstance(tree, exp.Query):
        return "SELECT"
    if isinstance(tree, exp.Command):
        return str(tree.this).upper()
    if isinstance(tree, exp.TruncateTable):
        return "TRUNCATE"
    return type(tree).__name__.upper()


def classify(tree: exp.Expr) -> StatementKind:
    """The statement's kind; a query holding a write anywhere (``SELECT ... INTO``, a
    data-modifying CTE) is classified by that write.

    >>> import sqlglot
    >>> classify(sqlglot.parse_one("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    ...                            read="postgres")).value
    'delete'
    """
    if isinstance(tree, _DDL):
        return StatementKind.DDL
    for kind_class, kind in _WRITES:
        if isinstance(tree, kind_class):
            return kind
    if not isinstance(tree, exp.Query):
        return StatementKind.OTHER
    if tree.find(*_ANY_WRITE) is None:  # one walk for the common case, a plain query
        return StatementKind.SELECT
    for kind_class, kind in _WRITES:
        if tree.find(kind_class) is not None:
            return kind
    if tree.find(exp.Into) is not None or tree.find(*_DDL) is not None:
        return StatementKind.DDL
    return StatementKind.SELECT
