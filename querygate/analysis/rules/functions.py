"""Function and table-function allow-lists.

``function-not-allowed`` (error): a function that is not on the engine's allow-list (a file
reader such as ``read_text``, ``pg_read_file``, ``set_config``, ``pg_sleep``, ``dblink``...).
``table-function-not-allowed`` (error): a function in FROM that is not an allowed generator
(``read_csv``, ``read_parquet``, ``glob``, ``pg_ls_dir``, ``dblink``...).
``current_setting`` is allowed on PostgreSQL only with a literal, non-sensitive setting name.
"""

from __future__ import annotations

from sqlglot import exp

from querygate.analysis import allowlist
from querygate.analysis.context import RuleContext
from querygate.analysis.findings import Finding, Severity, gettext_noop, template

#: Settings ``current_setting`` may read on PostgreSQL: presentation settings only (not
#: ``data_directory``, ``config_file``, ``hba_file``...).
SAFE_SETTINGS = frozenset(
    {"timezone", "datestyle", "intervalstyle", "search_path", "server_version", "lc_monetary"}
)


def function_name(func: exp.Func) -> str:
    """The function's SQL name, lower case (``read_text``, ``read_csv``, ``sum``)."""
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    return func.sql_name().lower()


def functions(tree: exp.Expr, *, context: RuleContext) -> list[Finding]:
    """Refuse every function (and table function) that is not on the allow-lists."""
    findings: list[Finding] = []
    funcs = context.parsed_nodes(exp.Func) if tree is context.parsed else tree.find_all(exp.Func)
    for func in funcs:
        if isinstance(func.parent, exp.Table) and func.arg_key == "this":
            allowed = _table_function_allowed(func, context)
            rule, what = "table-function-not-allowed", "table function"
        else:
            allowed = _function_allowed(func, context)
            rule, what = "function-not-allowed", "function"
        if not allowed:
            name = function_name(func)
            findings.append(
                context.finding(
                    rule,
                    Severity.ERROR,
                    (FUNCTION_NOT_ALLOWED if what == "function" else TABLE_FUNCTION)(name=name),
                    at=func,
                )
            )
    return findings


_FUNCTION_FIX = gettext_noop(
    "Remove %(name)s(); query the warehouse's tables instead, or ask an admin to add the "
    "function to the allow-list if it is harmless."
)
FUNCTION_NOT_ALLOWED = template(
    "function-not-allowed",
    gettext_noop(
        "The function %(name)s() is not allowed on this warehouse: only listed functions run "
        "here (no files, network, extensions or settings)."
    ),
    _FUNCTION_FIX,
)
TABLE_FUNCTION = template(
    "table-function-not-allowed",
    gettext_noop(
        "The table function %(name)s() is not allowed on this warehouse: only listed functions "
        "run here (no files, network, extensions or settings)."
    ),
    _FUNCTION_FIX,
)


def _function_allowed(func: exp.Func, context: RuleContext) -> bool:
    policy = context.policy
    if not isinstance(func, (exp.Anonymous, exp.AnonymousAggFunc)):
        return type(func).__name__ in policy.allowed_function_classes(context.engine)
    name = str(func.name).lower()
    if name == "current_setting" and context.engine == "postgres":
        first = func.expressions[0] if func.expressions else None
        return isinstance(first, exp.Literal) and first.name.lower() in SAFE_SETTINGS
    return name in policy.allowed_functions(context.engine)


def _table_function_allowed(func: exp.Func, context: RuleContext) -> bool:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower() in context.policy.allowed_table_functions(context.engine)
    return type(func).__name__ in allowlist.TABLE_FUNCTION_CLASSES
