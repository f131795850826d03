"""Statement allow-list and write refusal.

``statement-not-allowed`` (error): the statement kind (COPY, ATTACH, INSTALL, LOAD, SET,
PRAGMA, CALL, EXPORT...) is not on the engine's statement allow-list.
On Spark, whatever the policy: ``ADD JAR`` / ``ADD FILE`` / ``LIST`` (statement keywords not
on the allow-list), ``CREATE FUNCTION`` (a UDF runs any Java or Python code on the cluster),
and ``SELECT TRANSFORM(...) USING 'command'`` (runs a program on the executors).
``write-not-allowed`` (error): INSERT, UPDATE, DELETE, MERGE or DDL (including
``SELECT ... INTO`` and data-modifying CTEs) while the policy does not allow writes.
"""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis.classify import StatementKind, statement_name
from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

#: Statement keywords the allow-list refuses, with why (also used to name a statement sqlglot
#: cannot parse, such as EXPORT DATABASE); each reason is translated when shown.
KNOWN_REFUSED = {
    "COPY": gettext_noop("COPY reads or writes files (or runs a program)"),
    "ATTACH": gettext_noop("ATTACH opens another database file"),
    "DETACH": gettext_noop("DETACH changes the attached databases"),
    "INSTALL": gettext_noop("INSTALL downloads an extension"),
    "LOAD": gettext_noop("LOAD loads an extension"),
    "SET": gettext_noop("SET changes settings"),
    "RESET": gettext_noop("RESET changes settings"),
    "PRAGMA": gettext_noop("PRAGMA reads or changes settings"),
    "CALL": gettext_noop("CALL runs a procedure or table function"),
    "EXPORT": gettext_noop("EXPORT DATABASE writes files"),
    "IMPORT": gettext_noop("IMPORT DATABASE reads files"),
    "VACUUM": gettext_noop("VACUUM is maintenance"),
    "CHECKPOINT": gettext_noop("CHECKPOINT is maintenance"),
    "GRANT": gettext_noop("GRANT changes privileges"),
    "REVOKE": gettext_noop("REVOKE changes privileges"),
    "DO": gettext_noop("DO runs procedural code"),
    "LISTEN": gettext_noop("LISTEN waits for notifications"),
    "NOTIFY": gettext_noop("NOTIFY sends notifications"),
    "DISCARD": gettext_noop("DISCARD resets the session"),
    "PREPARE": gettext_noop("PREPARE defines statements"),
    "EXECUTE": gettext_noop("EXECUTE runs prepared statements"),
    "ADD JAR": gettext_noop("ADD JAR loads code onto the cluster"),
    "ADD FILE": gettext_noop("ADD FILE ships files to the cluster"),
    "ADD ARCHIVE": gettext_noop("ADD ARCHIVE ships files to the cluster"),
    "CACHE": gettext_noop("CACHE TABLE changes the cluster's memory"),
    "UNCACHE": gettext_noop("UNCACHE TABLE changes the cluster's memory"),
    "REFRESH": gettext_noop("REFRESH changes cached metadata"),
    "MSCK REPAIR": gettext_noop("MSCK REPAIR changes the metastore"),
    "LOADDATA": gettext_noop("LOAD DATA reads files"),
    "USE": gettext_noop("USE changes the session's catalog"),
    "CREATE FUNCTION": gettext_noop("creating a function (UDF) runs code on the cluster"),
    "TRANSFORM": gettext_noop("TRANSFORM ... USING runs a program"),
}


STATEMENT_NOT_ALLOWED = template(
    "statement-not-allowed",
    gettext_noop("%(statement)s is not allowed on this warehouse: %(why)s."),
    gettext_noop(
        "Only SELECT queries over the warehouse's tables run here; ask an admin to load "
        "external data into a table."
    ),
    translated=("why",),
)
WRITE_NOT_ALLOWED = template(
    "write-not-allowed",
    gettext_noop(
        "%(kind)s statements are not allowed for you on this warehouse: only read-only "
        "queries run here."
    ),
    gettext_noop("Run a SELECT instead, or ask an admin for write access."),
)


def statements(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """Refuse statements not on the allow-list, and writes the policy does not allow."""
    name = statement_name(tree)
    if name not in context.policy.allowed_statements(context.engine):
        return [not_allowed_finding(name, None, context, tree)]
    if isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "FUNCTION":
        return [not_allowed_finding("CREATE FUNCTION", None, context, tree)]
    transform = tree.find(exp.QueryTransform)
    if transform is not None:
        return [not_allowed_finding("TRANSFORM", None, context, transform)]
    kind = context.statement_kind
    if kind is StatementKind.SELECT or context.policy.allow_writes:
        return []
    return [
        context.finding(
            "write-not-allowed",
            Severity.ERROR,
            WRITE_NOT_ALLOWED(kind=kind.value.upper()),
            at=context.statement_start(),
        )
    ]


def not_allowed_finding(
    name: str, at: tuple[int, int] | None, context: RuleContext, tree: exp.Expr | None
) -> Finding:
    """The ``statement-not-allowed`` finding for statement keyword ``name``."""
    why = KNOWN_REFUSED.get(name, f"{name} statements are not on this warehouse's allow-list")
    runs_program = any(token.text.upper() == "PROGRAM" for token in context.tokens)
    program = " ... PROGRAM" if name == "COPY" and runs_program else ""
    return context.finding(
        "statement-not-allowed",
        Severity.ERROR,
        STATEMENT_NOT_ALLOWED(statement=f"{name}{program}", why=why),
        at=at or context.statement_start(),
    )
