"""What every rule gets besides the tree: the SQL text, catalog, policy and helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, cast

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.tokenizer_core import Token, TokenType

from querygate.analysis.catalog import Catalog, TableStats
from querygate.analysis.classify import WRITE_NODE_TYPES, StatementKind, classify
from querygate.analysis.findings import Finding, Severity, Text, line_column, start_offset
from querygate.analysis.policy import Policy
from querygate.analysis.predicates import column_tables_and_query

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


_DIALECTS: dict[str, Dialect] = {}
#: Per tuple of node classes asked for (``parsed_nodes_of``): node type -> whether it is an
#: instance of one of them. Node types are few, so this stays small; a dict lookup is a
#: tenth of an ``issubclass`` against a tuple.
_KIND_MATCHES: dict[tuple[type[exp.Expr], ...], dict[type, bool]] = {}
_LOWERCASING = (NormalizationStrategy.LOWERCASE, NormalizationStrategy.CASE_INSENSITIVE)


def sqlglot_dialect(name: str) -> Dialect:
    """sqlglot's ``Dialect`` called ``name``, made once per process (``get_or_raise`` makes a
    new one per call; a dialect holds only its settings, so one can be shared)."""
    found = _DIALECTS.get(name)
    if found is None:
        found = _DIALECTS[name] = Dialect.get_or_raise(name)
    return found


@dataclass
class RuleContext:
    """Inputs shared by the rules of one analysis.

    ``parsed`` is the statement's one tree. Until qualification it is the tree as written;
    qualification rewrites it in place (stars expanded, every column carrying its table
    alias) and then ``qualified`` is set to it. ``qualified`` stays None when the statement
    is not a query or does not qualify; ``scopes`` are the qualified tree's.

    The node index (``parsed_nodes``...) is built from the tree as written, on first use.
    Qualification keeps the nodes it does not replace (SELECTs, joins, conditions, CTEs,
    tables, functions), so the index still finds those afterwards; for columns and stars
    walk the qualified tree or its scopes.
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
    #: True once ``index_tree`` normalized the identifiers (qualification's first step).
    identifiers_normalized: bool = False
    _index: tuple[int, dict[type, list[exp.Expr]]] | None = field(default=None, repr=False)
    # Memos of one analysis: plain fields, as ``cached_property`` takes a lock on every first
    # use (Python 3.11) and the analysis makes a few hundred of these lookups.
    _scopes: list[Scope] | None = field(default=None, repr=False)
    _statement_kind: StatementKind | None = field(default=None, repr=False)
    _cte_names: set[str] | None = field(default=None, repr=False)
    _table_stats_memo: dict[int, tuple[exp.Table, TableStats | None]] = field(
        default_factory=dict, repr=False
    )
    _node_facts_memo: dict[int, tuple[exp.Expr, tuple[frozenset[str], bool]]] = field(
        default_factory=dict, repr=False
    )
    _parsed_nodes_cache: dict[type, list[exp.Expr]] = field(default_factory=dict, repr=False)
    #: Per scope (by id, with the scope to check the id): (table alias, column) -> NDV.
    ndv_memos: dict[int, tuple[Scope, dict[tuple[str, str], int | None]]] = field(
        default_factory=dict, repr=False
    )

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
        message: Text,
        *,
        at: exp.Expr | tuple[int, int] | None,
    ) -> Finding:
        """A finding located at a node (or an explicit (line, column)); ``message`` is a
        rule's template with its parameters (message and suggestion)."""
        line, column = at if isinstance(at, tuple) else self.position(at)
        return Finding.of(rule, severity, message, line, column)

    def table_stats(self, table: exp.Table) -> TableStats | None:
        """The catalog entry for a table reference, or None (CTE, function, unknown);
        looked up once per reference (the rules and the estimate ask for each many times).
        Qualification only adds the default schema and lower-cases the name, which the
        catalog lookup does anyway, so the answer holds before and after it."""
        memo = self._table_stats_memo
        hit = memo.get(id(table))
        if hit is not None and hit[0] is table:  # the node itself: an id can be reused
            return hit[1]
        stats = None
        if isinstance(table.this, exp.Identifier):
            stats = self.catalog.table(table.name, table.db or None)
        memo[id(table)] = (table, stats)
        return stats

    def column_tables(self, node: exp.Expr) -> frozenset[str]:
        """The table aliases of the (qualified) columns under ``node`` (see ``node_facts``)."""
        return self.node_facts(node)[0]

    def node_facts(self, node: exp.Expr) -> tuple[frozenset[str], bool]:
        """(the table aliases of the columns under ``node``, whether a query is under it),
        from one walk per node: the predicates of a scope are asked by several rules and the
        estimate, and each ``find`` walks the subtree anew (a few microseconds each)."""
        memo = self._node_facts_memo
        hit = memo.get(id(node))
        if hit is not None and hit[0] is node:  # the node itself: an id can be reused
            return hit[1]
        facts = column_tables_and_query(node)
        memo[id(node)] = (node, facts)
        return facts

    def is_large(self, stats: TableStats | None) -> bool:
        """True when the table passes the policy's row or byte threshold."""
        if stats is None:
            return False
        rows_large = (stats.rows or 0) >= self.policy.large_table_rows
        return rows_large or (stats.bytes or 0) >= self.policy.large_table_bytes

    def sql_of(self, node: exp.Expr) -> str:
        """``node`` as SQL in the warehouse's dialect, identifiers unquoted where possible."""
        return node.sql(dialect=self.dialect, identify=False)

    @property
    def scopes(self) -> list[Scope]:
        """Scopes of the qualified tree (innermost first), built once; empty before
        qualification and when it failed."""
        if self.qualified is None:
            return []
        if self._scopes is None:
            try:
                self._scopes = traverse_scope(self.qualified)
            except OptimizeError:  # a tree sqlglot cannot scope: rules that need them skip it
                self._scopes = []
        return self._scopes

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

    @property
    def statement_kind(self) -> StatementKind:
        """The kind of the parsed statement (``classify``), computed once per analysis."""
        if self._statement_kind is None:
            if isinstance(self.parsed, exp.Query) and not self.has_parsed_node(WRITE_NODE_TYPES):
                self._statement_kind = StatementKind.SELECT  # classify's answer, from the index
            else:
                self._statement_kind = classify(self.parsed)
        return self._statement_kind

    @property
    def cte_names(self) -> set[str]:
        """Lower-cased names of every CTE in the statement."""
        if self._cte_names is None:
            self._cte_names = {cte.alias_or_name.lower() for cte in self.parsed_nodes(exp.CTE)}
        return self._cte_names

    def index_tree(self, *, normalize: bool) -> None:
        """Build the node index (one walk of the parsed tree); with ``normalize``, also do
        the first step of qualification, sqlglot's ``normalize_identifiers(...,
        store_original_column_identifiers=True)``, in the same walk, and set
        ``identifiers_normalized``.

        Walking a tree in Python costs about as much as the rest of that step, so doing both
        at once saves a tenth of the analysis. The step is done as sqlglot does it: every
        identifier through the dialect's ``normalize_identifier``, each outermost column or
        dot path first keeping its original name parts (``dot_parts``), which qualification
        uses. A statement with a ``sqlglot.meta case_sensitive`` comment is left to sqlglot's
        own step (that comment exempts a subtree).

        Depth-first with an explicit stack, the cheapest walk in Python (a third less than
        ``walk()``'s generator); a node's ancestors come before it, as in sqlglot's walk,
        but the order within a bucket is no document order, so callers that show several
        nodes sort them by position."""
        normalize = normalize and "case_sensitive" not in self.sql
        dialect = sqlglot_dialect(self.dialect)
        normalizer = dialect.normalize_identifier
        # Lower-casing leaves an all-lowercase name as it is: skip the call for those.
        lowers = dialect.normalization_strategy in _LOWERCASING
        buckets: dict[type, list[exp.Expr]] = {}
        stack: list[exp.Expr] = [self.parsed]
        pop, push = stack.pop, stack.extend
        count = 0
        while stack:
            node = pop()
            count += 1
            kind = node.__class__
            if kind is exp.Identifier:  # a third of the nodes: a leaf, and not indexed
                if normalize and not (lowers and node.this.islower()):
                    normalizer(node)
                continue
            bucket = buckets.get(kind)
            if bucket is None:
                buckets[kind] = [node]
            else:
                bucket.append(node)
            outermost_path = kind is exp.Column or kind is exp.Dot
            if normalize and outermost_path and not isinstance(node.parent, exp.Dot):
                _keep_dot_parts(node)
            push(node.iter_expressions())
        self._index = (count, buckets)
        self.identifiers_normalized = normalize

    @property
    def _parsed_index(self) -> tuple[int, dict[type, list[exp.Expr]]]:
        """(node count, the parsed tree's nodes bucketed by their exact type), built on first
        use when ``index_tree`` has not built it."""
        if self._index is None:
            self.index_tree(normalize=False)
        assert self._index is not None  # just built
        return self._index

    def has_parsed_node(self, kinds: tuple[type[exp.Expr], ...]) -> bool:
        """True when the parsed tree has a node that is an instance of one of ``kinds``."""
        return any(issubclass(t, kinds) for t in self._parsed_index[1])

    def parsed_nodes_of(self, kinds: tuple[type[exp.Expr], ...]) -> list[exp.Expr]:
        """The nodes of the parsed tree that are instances of any of ``kinds``, each once,
        from one pass over the index's types (``parsed_nodes`` per kind would pass over them
        once per kind); not cached."""
        matches = _KIND_MATCHES.get(kinds)
        if matches is None:
            matches = _KIND_MATCHES[kinds] = {}
        found: list[exp.Expr] = []
        for node_type, bucket in self._parsed_index[1].items():
            match = matches.get(node_type)
            if match is None:
                match = matches[node_type] = issubclass(node_type, kinds)
            if match:
                found += bucket
        return found

    @property
    def parsed_node_count(self) -> int:
        """How many nodes the parsed tree has (``len(list(parsed.walk()))``)."""
        return self._parsed_index[0]

    def parsed_nodes(self, kind: type[E]) -> list[E]:
        """The nodes of the parsed tree that are instances of ``kind`` (what
        ``parsed.find_all(kind)`` yields, in no particular order; identifiers are not
        indexed), from the index built by one walk (the parsed tree must not change before
        the first call; callers must not change the list)."""
        found = self._parsed_nodes_cache.get(kind)
        if found is None:
            buckets = [b for t, b in self._parsed_index[1].items() if issubclass(t, kind)]
            found = buckets[0] if len(buckets) == 1 else [n for b in buckets for n in b]
            self._parsed_nodes_cache[kind] = found
        return cast("list[E]", found)  # every node is an instance of ``kind``


def _keep_dot_parts(node: exp.Expr) -> None:
    """Store an outermost column's (or dot path's) name parts as written in its root
    column's ``meta["dot_parts"]``, as sqlglot's ``normalize_identifiers`` does with
    ``store_original_column_identifiers``."""
    if isinstance(node, exp.Column):
        node.meta["dot_parts"] = [part.name for part in node.parts]
        return
    if node.is_star:
        return
    root, dot_parts = node, []
    while isinstance(root, exp.Dot):
        dot_parts.append(root.expression.name)
        root = root.this
    dot_parts.reverse()
    if isinstance(root, exp.Column):
        dot_parts = [part.name for part in root.parts] + dot_parts
    root.meta["dot_parts"] = dot_parts
