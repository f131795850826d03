"""``analyze``: SQL + dialect + catalog + policy -> Report. Pure: no I/O, no clock.

Steps: 1. tokenize and parse (a parse error becomes a ``parse-error`` finding with line and
column); 2. exactly one statement (``multiple-statements``); 3. classify; 4. gate rules on
the parsed tree (statement and function allow-lists, file paths, writes); 5. resolve tables
(``unknown-table``); 6. the lint rules that judge the query as written (``SYNTAX_RULES``);
7. qualify the same tree in place against the catalog (``unknown-column``); 8. the lint rules
that need resolved columns and scopes (``RULES``); the lint findings are re-graded by the
policy's ``severity_overrides`` (the findings of steps 1-5 and 7 are never overridden) and
kept only when the query qualified; 9. estimate; 10. decide.

One tree serves every step: the rules of steps 4-6 read it before qualification rewrites it,
and a finding's position and text are fixed when it is made, so nothing has to be parsed or
copied twice (the analysis costs little more than sqlglot's own parse + qualify).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re

from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify_columns import qualify_columns
from sqlglot.optimizer.qualify_tables import qualify_tables
from sqlglot.optimizer.scope import Scope
from sqlglot.schema import MappingSchema
from sqlglot.tokenizer_core import Token, TokenType

from querygate.analysis.catalog import Catalog
from querygate.analysis.classify import StatementKind
from querygate.analysis.context import RuleContext, sqlglot_dialect
from querygate.analysis.estimate import Estimate, estimate, table_reads
from querygate.analysis.findings import (
    Finding,
    Severity,
    Text,
    gettext_noop,
    line_column,
    start_offset,
    template,
)
from querygate.analysis.policy import LINT_RULES, Policy
from querygate.analysis.report import AnalysisFailure, Report, decide_reasons
from querygate.analysis.rules import GATE_RULES, RULES, SYNTAX_RULES, run_rules
from querygate.analysis.rules.file_tables import is_file_path_table
from querygate.analysis.rules.statements import KNOWN_REFUSED, not_allowed_finding

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_UNRESOLVED = re.compile(r"Column '([^']+)' could not be resolved")
_FOR_TABLE = re.compile(r"for table: '([^']+)'")
_LAST_NAME = re.compile(r": (\w+)$")
_POSITION = re.compile(r"Line:? (\d+), Col: (\d+)")
# sqlglot's "Required keyword: 'this' missing for <class 'sqlglot.expressions.query.Where'>".
_MISSING = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]*?(\w+)'>")


#: The policy of an analysis that names none (a policy is frozen, so one can be shared).
_DEFAULT_POLICY = Policy()


PARSE_ERROR = template(
    "parse-error",
    gettext_noop("The SQL does not parse: %(error)s"),
    gettext_noop("Fix the syntax at the marked position."),
)
# What sqlglot says went wrong, as phrases of our own where its wording follows a known
# pattern (the English is sqlglot's, byte for byte), so a reader of another language gets
# the whole message translated; a description of no known pattern stays sqlglot's English.
PARSE_INCOMPLETE = template(
    "parse-error.incomplete", gettext_noop("incomplete %(node)s: something is missing")
)
PARSE_EXPECTING = template(
    "parse-error.expecting", gettext_noop("Expecting %(expected)s"), translated=("expected",)
)
PARSE_EXPECTED = template(
    "parse-error.expected", gettext_noop("Expected %(expected)s"), translated=("expected",)
)
PARSE_EXPECTED_GOT = template(
    "parse-error.expected-got",
    gettext_noop("Expected %(expected)s but got %(got)s"),
    translated=("expected",),
)
#: What sqlglot says it expected, in words (translated when shown; tokens stay as they are).
_EXPECTED_WORDS = (
    gettext_noop("table name"),
    gettext_noop("database name"),
    gettext_noop("type"),
    gettext_noop("privilege"),
)
PARSE_UNEXPECTED = template(
    "parse-error.unexpected", gettext_noop("Invalid expression / Unexpected token")
)
PARSE_TOKENS = template(
    "parse-error.tokens",
    gettext_noop("the text cannot be split into SQL tokens (an unclosed quote or comment?)"),
)
_EXPECTED = re.compile(r"(Expecting|Expected) (.+?)(?: but got (.+))?")
_TOKEN = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: .*>", re.S)
EMPTY_STATEMENT = template("empty-statement", gettext_noop("There is no SQL statement."))
MULTIPLE_STATEMENTS = template(
    "multiple-statements",
    gettext_noop("Send exactly one statement per request; this one has %(count)s."),
    gettext_noop("Split the script and send each statement on its own."),
)
_UNKNOWN_TABLE = gettext_noop("Table %(table)s does not exist in this warehouse.")
UNKNOWN_TABLE = template("unknown-table", _UNKNOWN_TABLE, gettext_noop("Did you mean %(close)s?"))
UNKNOWN_TABLE_NO_MATCH = template(
    "unknown-table.no-match",
    _UNKNOWN_TABLE,
    gettext_noop("Check the table name against the warehouse's catalog."),
)
AMBIGUOUS_COLUMN = template(
    "ambiguous-column",
    gettext_noop("Column %(name)s is ambiguous: %(count)s tables of this query have it."),
    gettext_noop("Qualify it with its table: %(choices)s."),
)
UNKNOWN_ALIAS = template(
    "unknown-column.alias",
    gettext_noop("%(table)s.%(name)s: %(table)s is not a table or alias in this query."),
    gettext_noop("Use one of the aliases defined in FROM."),
)
_UNKNOWN_COLUMN = gettext_noop("Column %(name)s does not exist in the tables this query reads.")
UNKNOWN_COLUMN = template(
    "unknown-column", _UNKNOWN_COLUMN, gettext_noop("Did you mean %(close)s?")
)
UNKNOWN_COLUMN_NO_MATCH = template(
    "unknown-column.no-match",
    _UNKNOWN_COLUMN,
    gettext_noop("Check the column name against the tables in FROM."),
)


def analyze(
    sql: str,
    *,
    dialect: str,
    catalog: Catalog,
    policy: Policy | None = None,
    keep_statement: bool = False,
) -> Report:
    """Analyze one SQL request; never raises for bad SQL (it becomes findings).

    With ``keep_statement`` the report carries a copy of the statement as written
    (``Report.statement``), so nothing downstream has to parse the SQL again.

    >>> from querygate.analysis.catalog import ColumnStats, TableStats
    >>> cat = Catalog((TableStats("t", (ColumnStats("a", "INT"),), rows=10),))
    >>> analyze("SELECT a FROM t", dialect="duckdb", catalog=cat).decision.value
    'allow'
    """
    policy = policy or _DEFAULT_POLICY
    try:
        # Tokenize once: the rules need the tokens (positions, keywords) and the parser takes
        # them as they are, so sqlglot.parse's own tokenizing would be wasted work.
        parser_dialect = sqlglot_dialect(dialect)
        tokens = parser_dialect.tokenize(sql)
        trees = [t for t in parser_dialect.parser().parse(tokens, sql) if t is not None]
    except (ParseError, TokenError) as error:
        return _failure(_parse_finding(error, sql, dialect, catalog, policy), "parse", policy)
    if len(trees) != 1:
        return _failure(_statement_count_finding(len(trees), tokens, sql), "statements", policy)
    tree = trees[0]
    as_written = tree.copy() if keep_statement else None
    context = RuleContext(sql, dialect, catalog, policy, tree, tokens)
    # A query will be qualified: normalize its identifiers while indexing it (one walk).
    context.index_tree(normalize=isinstance(tree, exp.Query))
    findings = run_rules(GATE_RULES, tree, context)
    findings += unknown_tables(tree, context)
    report_estimate: Estimate | None = None
    if isinstance(tree, exp.Query) and not any(f.severity is Severity.ERROR for f in findings):
        syntax = run_rules(SYNTAX_RULES, tree, context)
        problem = qualify_against(tree, context)
        if problem is not None:
            findings.append(problem)
        else:
            lint = syntax + run_rules(RULES, tree, context)
            findings += apply_severity_overrides(lint, policy)
            report_estimate = estimate(context)
    return _report(context.statement_kind, findings, report_estimate, context, as_written)


def apply_severity_overrides(findings: list[Finding], policy: Policy) -> list[Finding]:
    """The lint ``findings`` with the policy's ``severity_overrides`` applied (``off`` drops
    a finding). Only ever called on lint-rule findings; safety rule ids are skipped here too,
    although ``Policy`` already refuses to hold them."""
    overrides = policy.severity_overrides
    if not overrides:
        return findings
    graded: list[Finding] = []
    for finding in findings:
        override = overrides.get(finding.rule) if finding.rule in LINT_RULES else None
        if override is None:
            graded.append(finding)
        elif override != "off":
            graded.append(dataclasses.replace(finding, severity=Severity(override)))
    return graded


def _report(
    kind: StatementKind,
    findings: list[Finding],
    est: Estimate | None,
    context: RuleContext,
    statement: exp.Expr | None = None,
) -> Report:
    reads = table_reads(context) if context.qualified is not None else []
    tables = sorted({r.stats.qualified_name for r in reads})
    columns = sorted({f"{r.stats.qualified_name}.{c}" for r in reads for c in r.columns})
    ordered = sorted(findings, key=lambda f: (f.line, f.column, f.rule))
    decision, reasons = decide_reasons(ordered, est, context.policy)
    return Report(
        statement_kind=kind,
        decision=decision,
        reasons=tuple(str(r) for r in reasons),
        reason_codes=tuple(r.to_dict() for r in reasons),
        findings=tuple(ordered),
        estimate=est,
        sql=context.sql,
        dialect=context.dialect,
        tables=tuple(tables),
        columns=tuple(columns),
        statement=statement,
    )


def _failure(finding: Finding, kind: str, policy: Policy) -> Report:
    decision, reasons = decide_reasons([finding], None, policy)
    failure = AnalysisFailure(kind, finding.message, finding.line, finding.column)
    return Report(
        None,
        decision,
        tuple(str(r) for r in reasons),
        (finding,),
        None,
        error=failure,
        reason_codes=tuple(r.to_dict() for r in reasons),
    )


def _parse_finding(
    error: ParseError | TokenError, sql: str, dialect: str, catalog: Catalog, policy: Policy
) -> Finding:
    offset = _LEADING_COMMENTS.match(sql).end()  # type: ignore[union-attr] # always matches
    words = sql[offset:].split(None, 1)
    first = words[0].upper() if words else ""
    if first in KNOWN_REFUSED:
        # A refused statement sqlglot cannot parse (EXPORT DATABASE...): name it, not a typo.
        context = RuleContext(sql, dialect, catalog, policy, exp.Command(this=first))
        return not_allowed_finding(first, line_column(sql, offset), context, None)
    line, column, message = _error_position(error, sql)
    return Finding.of("parse-error", Severity.ERROR, PARSE_ERROR(error=message), line, column)


def _description(description: str) -> Text | str:
    """sqlglot's description of a parse error as a phrase (``Text``) where it has a known
    shape, else as it is."""
    if description == PARSE_UNEXPECTED.message:
        return PARSE_UNEXPECTED()
    matched = _EXPECTED.fullmatch(description)
    if matched is None:
        return description
    word, expected, got = matched.groups()
    token = _TOKEN.fullmatch(got or "")
    if token is not None:  # sqlglot's repr of a Token: its text, or nothing at the end
        got = None if token.group(1) == "SENTINEL" else token.group(2)
    if got is not None:
        return PARSE_EXPECTED_GOT(expected=expected, got=got)
    return (PARSE_EXPECTING if word == "Expecting" else PARSE_EXPECTED)(expected=expected)


def _error_position(error: ParseError | TokenError, sql: str) -> tuple[int, int, Text | str]:
    """(line, column of the offending token's start, one-line message or phrase)."""
    details = error.errors[0] if isinstance(error, ParseError) and error.errors else None
    if details is not None:
        line, end = int(details["line"]), int(details["col"])
        highlight = str(details.get("highlight") or "")
        column = max(1, end - len(highlight) + 1) if highlight else end
        description = str(details["description"])
        missing = _MISSING.match(description)
        phrase: Text | str = (
            PARSE_INCOMPLETE(node=missing.group(2).upper())
            if missing
            else _description(description)
        )
        if (missing or description.startswith("Expecting")) and not str(
            details.get("end_context") or ""
        ).strip():
            # The input ended before what the parser wanted: sqlglot names the last token
            # it read, but what is missing goes after it, where the user must type.
            column = end + 1
        return line, column, phrase
    match = _POSITION.search(str(error))
    text: Text | str = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, TokenError):
        text = PARSE_TOKENS()
    if match:
        return int(match.group(1)), int(match.group(2)), text
    return 1, 1, text


def _statement_count_finding(count: int, tokens: list[Token], sql: str) -> Finding:
    if count == 0:
        return Finding.of("empty-statement", Severity.ERROR, EMPTY_STATEMENT(), 1, 1)
    line, column = 1, 1
    for before, token in itertools.pairwise(tokens):
        if before.token_type == TokenType.SEMICOLON and token.token_type != TokenType.SEMICOLON:
            line, column = line_column(sql, token.start)
            break
    return Finding.of(
        "multiple-statements", Severity.ERROR, MULTIPLE_STATEMENTS(count=count), line, column
    )


def unknown_tables(tree: exp.Expr, context: RuleContext) -> list[Finding]:
    """``unknown-table`` errors for table names neither in the catalog nor CTEs."""
    findings: list[Finding] = []
    created = tree.this if isinstance(tree, exp.Create) else None
    tables = context.parsed_nodes(exp.Table) if tree is context.parsed else tree.find_all(exp.Table)
    for table in tables:
        if table is created or not isinstance(table.this, exp.Identifier):
            continue
        if not table.db and table.name.lower() in context.cte_names:
            continue
        if context.table_stats(table) is not None or is_file_path_table(table, context):
            continue
        names = sorted(t.name for t in context.catalog.tables)
        close = difflib.get_close_matches(table.name.lower(), names, n=3)
        findings.append(
            context.finding(
                "unknown-table",
                Severity.ERROR,
                (UNKNOWN_TABLE if close else UNKNOWN_TABLE_NO_MATCH)(
                    table=table.sql(dialect=context.dialect), close=" or ".join(close)
                ),
                at=table,
            )
        )
    return findings


def qualify_against(tree: exp.Expr, context: RuleContext) -> Finding | None:
    """Qualify ``tree`` in place against the catalog and set ``context.qualified``; or
    return the ``unknown-column`` (``ambiguous-column``) finding that stops the analysis.

    sqlglot's own validation step (``validate_qualify_columns``) is replaced by the same
    checks on the scopes the rules use anyway (``_unresolved_column``): it would build every
    scope a second time. Its first step is done by ``context.index_tree``."""
    schema = sqlglot_schema(context.catalog, context.dialect)
    dialect = sqlglot_dialect(context.dialect)
    try:
        # sqlglot's ``qualify`` with quote_identifiers=False, step by step: identifiers
        # (usually normalized already by ``index_tree``), tables, columns; its last step,
        # validation, is ``_unresolved_column`` below.
        if not context.identifiers_normalized:
            normalize_identifiers(tree, dialect=dialect, store_original_column_identifiers=True)
        qualify_tables(tree, db=context.catalog.default_schema, dialect=dialect)
        qualify_columns(tree, schema)
    except SqlglotError as error:
        return _unknown_column(str(error), context)
    finally:
        _trim_lookup_caches(schema)
    context.qualified = tree
    unresolved = _unresolved_column(context.scopes)
    if unresolved is None:
        return None
    context.qualified = None
    column, for_table = unresolved
    return _column_finding(
        column.name,
        for_table,
        may_be_ambiguous=True,
        at=context.position(column),
        context=context,
    )


def _unresolved_column(scopes: list[Scope]) -> tuple[exp.Column, str | None] | None:
    """The first column sqlglot's ``validate_qualify_columns`` would complain about, with
    the qualifier it was written with, or None: a column of no source, else one that stayed
    unqualified (unknown or ambiguous)."""
    unqualified: list[exp.Column] = []
    for scope in scopes:
        if not isinstance(scope.expression, exp.Select):
            continue
        if scope.external_columns and not scope.is_correlated_subquery and not scope.pivots:
            column = scope.external_columns[0]
            return column, column.table or None
        unqualified += scope.unqualified_columns
    return (unqualified[0], None) if unqualified else None


#: Entries sqlglot's per-schema lookup caches may hold before they are dropped (see below).
_MAX_CACHED_LOOKUPS = 1_000


def sqlglot_schema(catalog: Catalog, dialect: str) -> MappingSchema:
    """sqlglot's ``MappingSchema`` of ``catalog`` in ``dialect``, built once per catalog
    snapshot (normalizing every name costs more than qualifying a typical query).

    The cache lives on the (frozen) catalog object, so it goes with the snapshot and a new
    snapshot starts empty. qualify only reads the schema, apart from its lookup caches.
    """
    key = f"sqlglot-schema:{dialect}"
    cached = catalog.derived.get(key)
    if isinstance(cached, MappingSchema):
        return cached
    mapping: dict[str, object] = dict(catalog.sqlglot_schema())
    schema = MappingSchema(mapping, dialect=dialect)
    catalog.derived[key] = schema
    return schema


def _trim_lookup_caches(schema: MappingSchema) -> None:
    """Bound sqlglot's lookup caches: they are keyed by table expressions (each holding its
    whole query tree through its parents), so a schema shared by every query of a long-lived
    process would otherwise keep every tree alive."""
    caches = (schema._find_cache, schema._normalized_table_cache)
    if sum(len(c) for c in caches) > _MAX_CACHED_LOOKUPS:
        for cache in caches:
            cache.clear()


def _unknown_column(message: str, context: RuleContext) -> Finding:
    """An ``unknown-column`` (or ``ambiguous-column``) finding from qualify's error text."""
    match = _UNRESOLVED.search(message) or _LAST_NAME.search(message)
    if match is None:
        found = _POSITION.search(message)
        at = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
        first_line = message.splitlines()[0] if message else "unresolved column"
        # sqlglot's own text: no template, every reader sees it as it is
        return Finding("unknown-column", Severity.ERROR, first_line, *at)
    name = match.group(1)
    alias = _FOR_TABLE.search(message)
    return _column_finding(
        name,
        alias.group(1) if alias else None,
        may_be_ambiguous=match.re is _UNRESOLVED,
        at=_first_mention(name, context),
        context=context,
    )


def _column_finding(
    name: str,
    for_table: str | None,
    *,
    may_be_ambiguous: bool,
    at: tuple[int, int],
    context: RuleContext,
) -> Finding:
    """The finding for column ``name`` that did not resolve (``for_table``: the qualifier
    it was written with): ambiguous when several tables of the query have it, else unknown."""
    tables = sorted(context.parsed_nodes(exp.Table), key=lambda t: start_offset(t) or 0)
    owners = [
        table.alias_or_name
        for table in tables
        if (stats := context.table_stats(table)) is not None and stats.column(name)
    ]
    if len(owners) > 1 and may_be_ambiguous:
        choices = " or ".join(f"{owner}.{name}" for owner in owners)
        return context.finding(
            "ambiguous-column",
            Severity.ERROR,
            AMBIGUOUS_COLUMN(name=name, count=len(owners), choices=choices),
            at=at,
        )
    if for_table is not None:
        return context.finding(
            "unknown-column",
            Severity.ERROR,
            UNKNOWN_ALIAS(table=for_table, name=name),
            at=at,
        )
    known = sorted({c.name for t in context.catalog.tables for c in t.columns})
    close = difflib.get_close_matches(name.lower(), known, n=3)
    return context.finding(
        "unknown-column",
        Severity.ERROR,
        (UNKNOWN_COLUMN if close else UNKNOWN_COLUMN_NO_MATCH)(name=name, close=" or ".join(close)),
        at=at,
    )


def _first_mention(name: str, context: RuleContext) -> tuple[int, int]:
    """Where ``name`` first appears as an identifier in the SQL, else (0, 0)."""
    for ident in context.parsed.find_all(exp.Identifier):
        if ident.name.lower() == name.lower() and start_offset(ident) is not None:
            column = ident.parent if isinstance(ident.parent, exp.Column) else ident
            return context.position(column)
    return 0, 0
