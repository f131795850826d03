"""Catalog snapshot: what the analysis knows about a warehouse's tables.

The snapshot is plain data (frozen dataclasses) built by the engine layer from the warehouse's
own statistics; the analysis never asks the warehouse anything. Every statistic is optional
except the column list: where a number is unknown the rules that need it stay silent and the
estimate falls back to documented defaults (see ``estimate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

#: Average width in bytes assumed for a column whose width the engine did not report.
DEFAULT_COLUMN_WIDTH = 8


@dataclass(frozen=True)
class ColumnStats:
    """One column: its SQL type, average width in bytes and, where known, more statistics.

    ``bytes`` is the column's stored size when the engine reports it (columnar engines do);
    otherwise ``avg_width * rows`` of its table is used. ``distinct`` is the number of distinct
    values (NDV).
    """

    name: str
    type: str = "VARCHAR"
    avg_width: int = DEFAULT_COLUMN_WIDTH
    bytes: int | None = None
    distinct: int | None = None


@dataclass(frozen=True)
class TableStats:
    """One table with its columns and statistics.

    ``primary_key`` and each entry of ``unique_keys`` are tuples of column names.
    ``partition_columns`` are the columns the table is partitioned by; when
    ``requires_partition_filter`` is set, a query must filter on one of them.
    """

    name: str
    columns: tuple[ColumnStats, ...]
    schema: str = "main"
    rows: int | None = None
    bytes: int | None = None
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()
    partition_columns: tuple[str, ...] = ()
    requires_partition_filter: bool = False

    @cached_property
    def qualified_name(self) -> str:
        """``schema.name``, lower case (made once per table: not a field, so equality,
        hashing, ``repr`` and ``asdict`` are unchanged)."""
        return f"{self.schema}.{self.name}".lower()

    def column(self, name: str) -> ColumnStats | None:
        """The column called ``name`` (case-insensitive), or None."""
        return self._columns_by_name.get(name.lower())

    @cached_property
    def _columns_by_name(self) -> dict[str, ColumnStats]:
        """Lower-cased name -> the first column of that name (built once: ``column`` is
        called for every column reference the estimate looks at). Not a field, so equality,
        hashing, ``repr`` and ``asdict`` are unchanged."""
        by_name: dict[str, ColumnStats] = {}
        for column in self.columns:
            by_name.setdefault(column.name.lower(), column)
        return by_name

    def column_bytes(self, name: str) -> int:
        """Bytes read to scan column ``name``: reported size, else width x rows.

        >>> t = TableStats("t", (ColumnStats("a", avg_width=4),), rows=10)
        >>> t.column_bytes("a")
        40
        """
        column = self.column(name)
        if column is None:
            return 0
        if column.bytes is not None:
            return column.bytes
        return column.avg_width * (self.rows or 0)

    def ndv(self, name: str) -> int | None:
        """Distinct values of column ``name``: the table's rows when the column alone is
        unique, else its reported NDV (None when unknown or no such column); answered once
        per column.

        >>> t = TableStats("t", (ColumnStats("id", distinct=7),), rows=10, primary_key=("id",))
        >>> t.ndv("id")
        10
        """
        memo = self._ndv_memo
        key = name.lower()
        if key not in memo:
            column = self.column(key)
            if column is None:
                memo[key] = None
            elif self.rows and self.is_unique({key}):
                memo[key] = self.rows
            else:
                memo[key] = column.distinct
        return memo[key]

    @cached_property
    def _ndv_memo(self) -> dict[str, int | None]:
        return {}

    def keys(self) -> tuple[tuple[str, ...], ...]:
        """Every declared unique key (primary key first), lower-cased."""
        return self._keys

    @cached_property
    def _keys(self) -> tuple[tuple[str, ...], ...]:
        keys = ((self.primary_key,) if self.primary_key else ()) + self.unique_keys
        return tuple(tuple(c.lower() for c in key) for key in keys)

    def is_unique(self, columns: set[str]) -> bool:
        """True when ``columns`` contain a declared key or a column whose NDV equals the rows
        (answered once per column set)."""
        lowered = frozenset(c.lower() for c in columns)
        memo = self._unique_memo
        found = memo.get(lowered)
        if found is None:
            found = memo[lowered] = self._is_unique(lowered)
        return found

    @cached_property
    def _unique_memo(self) -> dict[frozenset[str], bool]:
        return {}

    def _is_unique(self, lowered: frozenset[str]) -> bool:
        if any(key and set(key) <= lowered for key in self.keys()):
            return True
        for name in lowered:
            column = self.column(name)
            if (
                column
                and column.distinct is not None
                and self.rows
                and column.distinct >= self.rows
            ):
                return True
        return False


@dataclass(frozen=True)
class Catalog:
    """The tables of one warehouse; ``default_schema`` resolves unqualified names."""

    tables: tuple[TableStats, ...]
    default_schema: str = "main"
    _index: dict[tuple[str, str], TableStats] = field(
        init=False, repr=False, compare=False, hash=False
    )
    #: Derived per-dialect structures (sqlglot's ``MappingSchema``), built once per snapshot
    #: by ``analyze``: the catalog is frozen, so a changed catalog is a new object with an
    #: empty cache and can never be served a stale schema.
    derived: dict[str, object] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        index = {(t.schema.lower(), t.name.lower()): t for t in self.tables}
        object.__setattr__(self, "_index", index)

    def table(self, name: str, schema: str | None = None) -> TableStats | None:
        """The table ``schema.name`` (default schema when None), case-insensitive, or None."""
        return self._index.get(((schema or self.default_schema).lower(), name.lower()))

    def sqlglot_schema(self) -> dict[str, dict[str, dict[str, str]]]:
        """The nested ``{schema: {table: {column: type}}}`` mapping sqlglot's qualify takes."""
        mapping: dict[str, dict[str, dict[str, str]]] = {}
        for t in self.tables:
            columns = {c.name: c.type for c in t.columns}
            mapping.setdefault(t.schema, {})[t.name] = columns
        return mapping
