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
#: cannot parse, such as EXPORT DATABASE).
KNOWN_REFUSED = {
    "COPY": "COPY reads or writes files (or runs a program)",
    "ATTACH": "ATTACH opens another database file",
    "DETACH": "DETACH changes the attached databases",
    "INSTALL": "INSTALL downloads an extension",
    "LOAD": "LOAD loads an extension",
    "SET": "SET changes settings",
    "RESET": "RESET changes settings",
    "PRAGMA": "PRAGMA reads or changes settings",
    "CALL": "CALL runs a procedure or table function",
    "EXPORT": "EXPORT DATABASE writes files",
    "IMPORT": "IMPORT DATABASE reads files",
    "VACUUM": "VACUUM is maintenance",
    "CHECKPOINT": "CHECKPOINT is maintenance",
    "GRANT": "GRANT changes privileges",
    "REVOKE": "REVOKE changes privileges",
    "DO": "DO runs procedural code",
    "LISTEN": "LISTEN waits for notifications",
    "NOTIFY": "NOTIFY sends notifications",
    "DISCARD": "DISCARD resets the session",
    "PREPARE": "PREPARE defines statements",
    "EXECUTE": "EXECUTE runs prepared statements",
    "ADD JAR": "ADD JAR loads code onto the cluster",
    "ADD FILE": "ADD FILE ships files to the cluster",
    "ADD ARCHIVE": "ADD ARCHIVE ships files to the cluster",
    "CACHE": "CACHE TABLE changes the cluster's memory",
    "UNCACHE": "UNCACHE TABLE changes the cluster's memory",
    "REFRESH": "REFRESH changes cached metadata",
    "MSCK REPAIR": "MSCK REPAIR changes the metastore",
    "LOADDATA": "LOAD DATA reads files",
    "USE": "USE changes the session's catalog",
    "CREATE FUNCTION": "creating a function (UDF) runs code on the cluster",
    "TRANSFORM": "TRANSFORM ... USING runs a program",
}


STATEMENT_NOT_ALLOWED = template(
    "statement-not-allowed",
    gettext_noop("%(statement)s is not allowed on this warehouse: %(why)s."),
    gettext_noop(
        "Only SELECT queries over the warehouse's tables run here; ask an admin to load "
        "external data into a table."
    ),
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
    # ``why`` stays English (a short reason per keyword); the sentence around it translates.
    runs_program = any(token.text.upper() == "PROGRAM" for token in context.tokens)
    program = " ... PROGRAM" if name == "COPY" and runs_program else ""
    return context.finding(
        "statement-not-allowed",
        Severity.ERROR,
        STATEMENT_NOT_ALLOWED(statement=f"{name}{program}", why=why),
        at=at or context.statement_start(),
    )
