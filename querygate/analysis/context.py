"""What every rule gets besides the tree: the SQL text, catalog, policy and helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from typing import TypeVar, cast

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.tokenizer_core import Token, TokenType

from querygate.analysis.catalog import Catalog, TableStats
from querygate.analysis.classify import WRITE_NODE_TYPES, StatementKind, classify
from querygate.analysis.findings import Finding, Severity, line_column, start_offset
from querygate.analysis.policy import Policy

E = TypeVar("E", bound=exp.Expr)

_CASTS = ("CAST", "TRY_CAST")
_JOIN_MODIFIERS = {
    TokenType.LEFT,
    TokenType.RIGHT,
    TokenType.FULL,
    TokenType.INNER,
    TokenType.OUTER,
    TokenType.CROSS,
    TokenType.NATURAL,
    TokenType.SEMI,
    TokenType.ANTI,
}


@dataclass
class RuleContext:
    """Inputs shared by the rules of one analysis.

    ``parsed`` is the tree as written (stars not expanded); the tree passed to a rule is the
    qualified one (every column carries its table alias) unless qualification failed, in
    which case only rules with ``needs_qualified = False`` run.
    """

    sql: str
    dialect: str
    catalog: Catalog
    policy: Policy
    parsed: exp.Expr
    tokens: list[Token] = field(default_factory=list)
    qualified: exp.Expr | None = None
    #: Results derived from the qualified tree that several rules share, by name.
    derived: dict[str, object] = field(default_factory=dict)

    @property
    def engine(self) -> str:
        """The engine the allow-lists are looked up for (the dialect name)."""
        return self.dialect

    def position(self, node: exp.Expr | None) -> tuple[int, int]:
        """(line, column) where ``node`` starts, walking up to a parent with a known position."""
        while node is not None:
            offset = start_offset(node)
            if offset is not None:
                return line_column(self.sql, self._widen_to_cast(offset, node))
            node = node.parent
        return 0, 0

    def _widen_to_cast(self, offset: int, node: exp.Expr) -> int:
        """``CAST(`` carries no position in sqlglot's tree: move a node that starts with a
        cast back from its first operand to the CAST keyword."""
        index = self._token_index_before(offset)
        if node.find(exp.Cast) is not None and index >= 1:
            before, keyword = self.tokens[index], self.tokens[index - 1]
            if before.token_type == TokenType.L_PAREN and keyword.text.upper() in _CASTS:
                return keyword.start
        return offset

    def keyword_position(
        self,
        node: exp.Expr,
        keywords: set[TokenType],
        stop: frozenset[TokenType] = frozenset({TokenType.COMMA, TokenType.SELECT}),
    ) -> tuple[int, int]:
        """Position of the keyword token (e.g. JOIN, ORDER BY, UNION) before ``node``'s text,
        extended back over join modifiers (LEFT, CROSS...); scanning back stops at a ``stop``
        token, and then ``node``'s own position is returned."""
        offset = start_offset(node)
        if offset is None:
            return self.position(node)
        index = self._token_index_before(offset)
        while index >= 0 and self.tokens[index].token_type not in keywords:
            if self.tokens[index].token_type in stop:
                return self.position(node)
            index -= 1
        if index < 0:
            return self.position(node)
        while index > 0 and self.tokens[index - 1].token_type in _JOIN_MODIFIERS:
            index -= 1
        return line_column(self.sql, self.tokens[index].start)

    def token_after(self, node: exp.Expr, kind: TokenType) -> tuple[int, int]:
        """Position of the first ``kind`` token after ``node``'s start (e.g. a join's ON)."""
        offset = start_offset(node)
        if offset is not None:
            for token in self.tokens:
                if token.start > offset and token.token_type == kind:
                    return line_column(self.sql, token.start)
        return self.position(node)

    def _token_index_before(self, offset: int) -> int:
        index = -1
        for i, token in enumerate(self.tokens):
            if token.start >= offset:
                break
            index = i
        return index

    def statement_start(self) -> tuple[int, int]:
        """Position of the statement's first token (after any leading comments)."""
        if self.tokens:
            return line_column(self.sql, self.tokens[0].start)
        return 1, 1

    def finding(
        self,
        rule: str,
        severity: Severity,
        message: str,
        *,
        at: exp.Expr | tuple[int, int] | None,
        suggestion: str = "",
    ) -> Finding:
        """A finding located at a node (or an explicit (line, column))."""
        line, column = at if isinstance(at, tuple) else self.position(at)
        return Finding(rule, severity, message, line, column, suggestion)

    def table_stats(self, table: exp.Table) -> TableStats | None:
        """The catalog entry for a table reference, or None (CTE, function, unknown)."""
        if not isinstance(table.this, exp.Identifier):
            return None
        return self.catalog.table(table.name, table.db or None)

    def is_large(self, stats: TableStats | None) -> bool:
        """True when the table passes the policy's row or byte threshold."""
        if stats is None:
            return False
        rows_large = (stats.rows or 0) >= self.policy.large_table_rows
        return rows_large or (stats.bytes or 0) >= self.policy.large_table_bytes

    def sql_of(self, node: exp.Expr) -> str:
        """``node`` as SQL in the warehouse's dialect, identifiers unquoted where possible."""
        return node.sql(dialect=self.dialect, identify=False)

    @cached_property
    def scopes(self) -> list[Scope]:
        """Scopes of the qualified tree (innermost first); empty when there is none."""
        if self.qualified is None:
            return []
        try:
            return traverse_scope(self.qualified)
        except OptimizeError:  # a tree sqlglot cannot scope: rules that need scopes skip it
            return []

    def base_table(self, column: exp.Column, scope: Scope) -> exp.Table | None:
        """The base-table reference ``column`` reads, looking through outer scopes."""
        current: Scope | None = scope
        while current is not None:
            source = current.sources.get(column.table)
            if isinstance(source, exp.Table):
                return source
            if source is not None:
                return None
            current = current.parent
        return None

    def column_stats(self, column: exp.Column, scope: Scope) -> tuple[TableStats, str] | None:
        """The catalog table and column name a qualified column reads, or None."""
        table = self.base_table(column, scope)
        stats = self.table_stats(table) if table is not None else None
        if stats is None or stats.column(column.name) is None:
            return None
        return stats, column.name.lower()

    @cached_property
    def statement_kind(self) -> StatementKind:
        """The kind of the parsed statement (``classify``), computed once per analysis."""
        if isinstance(self.parsed, exp.Query) and not self.has_parsed_node(WRITE_NODE_TYPES):
            return StatementKind.SELECT  # what classify finds, read from the node index
        return classify(self.parsed)

    @cached_property
    def cte_names(self) -> set[str]:
        """Lower-cased names of every CTE in the statement."""
        return {cte.alias_or_name.lower() for cte in self.parsed_nodes(exp.CTE)}

    @cached_property
    def _parsed_index(self) -> tuple[int, dict[type, list[tuple[int, exp.Expr]]]]:
        """One breadth-first walk of the parsed tree: (node count, the nodes bucketed by
        their exact type, each with its position in the walk)."""
        buckets: dict[type, list[tuple[int, exp.Expr]]] = {}
        count = 0
        for count, node in enumerate(self.parsed.walk(), start=1):
            bucket = buckets.get(type(node))
            if bucket is None:
                buckets[type(node)] = [(count, node)]
            else:
                bucket.append((count, node))
        return count, buckets

    def has_parsed_node(self, kinds: tuple[type[exp.Expr], ...]) -> bool:
        """True when the parsed tree has a node that is an instance of one of ``kinds``."""
        return any(issubclass(t, kinds) for t in self._parsed_index[1])

    @property
    def parsed_node_count(self) -> int:
        """How many nodes the parsed tree has (``len(list(parsed.walk()))``)."""
        return self._parsed_index[0]

    def parsed_nodes(self, kind: type[E]) -> list[E]:
        """The nodes of the parsed tree that are instances of ``kind``, in the order
        ``parsed.find_all(kind)`` yields them, from the index built by one walk (the parsed
        tree must not change after the first call; callers must not change the list)."""
        found = self._parsed_nodes_cache.get(kind)
        if found is None:
            buckets = [b for t, b in self._parsed_index[1].items() if issubclass(t, kind)]
            if len(buckets) == 1:
                found = [node for _, node in buckets[0]]
            else:
                merged = sorted((pair for b in buckets for pair in b), key=itemgetter(0))
                found = [node for _, node in merged]
            self._parsed_nodes_cache[kind] = found
        return cast("list[E]", found)  # every node is an instance of ``kind``

    @cached_property
    def _parsed_nodes_cache(self) -> dict[type, list[exp.Expr]]:
        return {}
