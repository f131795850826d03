"""The gate's findings and reasons in the reader's language.

The analysis (``querygate/analysis``, no Django) stores each finding with a message ``code``
and its ``params`` next to the English ``message`` and ``suggestion``; each reason of the
decision likewise (``reason_codes`` of the report, parallel to ``reasons``). Here, at the
edge (API serializers and views, the SQL editor page, the gate's refusals), the template of
the code is looked up (``findings.TEMPLATES``), translated with ``gettext`` in the active
language (the user's setting or ``Accept-Language``) and filled with the params.

A stored finding from before codes existed, an unknown code, params that do not fill the
template, or a reader whose language has no translation of the template: the stored English
text is shown as it is, so an English reader always gets the stored bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext, gettext_noop

from portal.phrases import Phrase

# Importing the analysis registers every template (rules and analyze declare theirs).
from querygate.analysis import analyze as _analyze  # noqa: F401
from querygate.analysis.findings import TEMPLATES, Template, template

#: How deep phrases may nest inside a stored finding's params (hostile JSON stops here).
_MAX_DEPTH = 3


def render(code: Any, params: Any, english: str, *, part: str = "message") -> str:
    """The ``part`` (``message`` or ``suggestion``) of message ``code`` with ``params`` in
    the active language; ``english`` (the stored text) when it cannot be rendered."""
    template = TEMPLATES.get(code) if isinstance(code, str) else None
    if template is None:
        return english
    source = template.message if part == "message" else template.suggestion
    if not source or gettext(source) == source:
        return english  # English (or no translation): the stored text, byte for byte
    shown = _fill(template, params, source)
    return english if shown is None else shown


def _fill(template: Template, params: Any, source: str, depth: int = 0) -> str | None:
    """``source`` translated and filled with ``params``: a param that is a phrase of its own
    (``{"code", "params"}``) is rendered first, one named in ``template.translated`` is
    translated; None when the params do not fit."""
    if not isinstance(params, Mapping) or depth > _MAX_DEPTH:
        return None
    values: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, Mapping):
            inner_code = value.get("code")
            inner = TEMPLATES.get(inner_code) if isinstance(inner_code, str) else None
            if inner is None:
                return None
            value = _fill(inner, value.get("params"), inner.message, depth + 1)
            if value is None:
                return None
        elif name in template.translated and isinstance(value, str) and value:
            value = gettext(value)
        values[name] = value
    try:
        return gettext(source) % values
    except (KeyError, TypeError, ValueError):
        return None


def localize_finding(finding: Any) -> Any:
    """A finding dict with its message and suggestion in the active language."""
    if not isinstance(finding, dict):
        return finding
    code, params = finding.get("code"), finding.get("params")
    message = finding.get("message")
    suggestion = finding.get("suggestion")
    shown = dict(finding)
    if isinstance(message, str):
        shown["message"] = render(code, params, message)
    if isinstance(suggestion, str) and suggestion:
        shown["suggestion"] = render(code, params, suggestion, part="suggestion")
    return shown


def localize_reasons(reasons: Any, reason_codes: Any) -> Any:
    """``reasons`` in the active language: the first ones have templates in
    ``reason_codes`` (a finding's is ``rule: message``); any after them (a refused override,
    a budget) were written in the submitter's language and stay as they are."""
    if not isinstance(reasons, list) or not isinstance(reason_codes, list):
        return reasons
    shown = list(reasons)
    for index, (reason, entry) in enumerate(zip(reasons, reason_codes, strict=False)):
        if not isinstance(reason, str) or not isinstance(entry, dict):
            continue
        rule = entry.get("rule") or ""
        english = reason[len(rule) + 2 :] if rule and reason.startswith(f"{rule}: ") else reason
        text = render(entry.get("code"), entry.get("params"), english)
        shown[index] = f"{rule}: {text}" if rule else text
    return shown


def localize_analysis(analysis: Any) -> Any:
    """A stored analysis (``Report.to_dict`` plus extras) with its findings, reasons and
    error message in the active language; anything else as stored."""
    if not isinstance(analysis, dict):
        return analysis
    shown = dict(analysis)
    findings = analysis.get("findings")
    if isinstance(findings, list):
        shown["findings"] = [localize_finding(f) for f in findings]
    shown["reasons"] = localize_reasons(analysis.get("reasons"), analysis.get("reason_codes"))
    error = analysis.get("error")
    if isinstance(error, dict) and isinstance(findings, list) and len(findings) == 1:
        # A failed analysis has one finding, and the error repeats its message.
        first = findings[0]
        if isinstance(first, dict) and first.get("message") == error.get("message"):
            shown["error"] = {**error, "message": shown["findings"][0]["message"]}
    return shown


# What the worker stores when a query fails, is killed or lost (``Query.error``: its English
# ``message`` next to ``code`` and ``params``), rendered in the reader's language when shown.
# An engine's own text (DuckDB, PostgreSQL, Spark) stays as the engine wrote it, after a
# translated lead sentence.
ENGINE_REFUSED = template(
    "engine-refused", gettext_noop("The warehouse refused the query: %(error)s")
)
ENGINE_INTERRUPTED = template(
    "engine-interrupted", gettext_noop("The warehouse stopped the query: %(error)s")
)
SQL_NOT_RUNNABLE = template(
    "sql-not-runnable", gettext_noop("The gate cannot run this SQL: %(error)s.")
)
INTERNAL_ERROR = template(
    "internal-error", gettext_noop("The query failed on an internal error (%(kind)s).")
)
RESULT_CUT = template(
    "result-cut",
    gettext_noop("Only the first %(rows)s rows are kept: the result passed %(limit)s MiB."),
)
RESULT_NOT_STORED = template(
    "result-not-stored",
    gettext_noop("The query ran but its result could not be stored: %(error)s"),
)
KILL_UNREPORTED = template(
    "kill-unreported", gettext_noop("The executor did not report back after the kill.")
)
LOST_QUEUED = template(
    "lost-queued",
    gettext_noop(
        "No worker started this query within %(seconds)s s (a worker may have died); it will "
        "not run. Submit it again."
    ),
)
LOST_SILENT = template(
    "lost-silent",
    gettext_noop(
        "The process running this query stopped reporting for %(seconds)s s (it may have "
        "died); the query was abandoned. Submit it again."
    ),
)

#: The gate's own kill reasons (any other is a person's words, shown as written).
KILL_REASONS = (
    gettext_noop("cancelled by its owner"),
    gettext_noop("killed by an admin"),
    gettext_noop("runtime budget exceeded (watchdog)"),
    gettext_noop("engine timeout: runtime budget exceeded"),
    gettext_noop("pipeline run cancelled"),
)


def stored_error(template_: Template, **params: Any) -> dict[str, Any]:
    """A ``Query.error`` for the worker to store: the English message, its code and params."""
    text = template_(**params)
    return {"message": text.message, "code": text.code, "params": text.json_params()}


def localize_error(error: Any) -> Any:
    """A stored ``Query.error`` with its message in the active language (as stored when it
    has no known code)."""
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return error
    return {**error, "message": render(error.get("code"), error.get("params"), error["message"])}


def localize_kill_reason(reason: Any) -> Any:
    """The gate's own kill reasons in the active language; a person's reason as written."""
    return gettext(reason) if isinstance(reason, str) and reason in KILL_REASONS else reason


def error_phrase(error: Any, fallback: str) -> Any:
    """A stored ``Query.error`` as a ``Phrase`` (for a message that quotes it, such as a
    pipeline step's failure); its stored text, or ``fallback``, when it has no known code."""
    if not isinstance(error, dict) or not error.get("message"):
        return fallback
    code, params = error.get("code"), error.get("params")
    known = TEMPLATES.get(code) if isinstance(code, str) else None
    if known is None or not isinstance(params, Mapping):
        return str(error["message"])
    if any(isinstance(v, Mapping) for v in params.values()):
        return str(error["message"])
    return Phrase(known.message, params)


def finding_phrase(finding: dict[str, Any]) -> Any:
    """A finding's message as a ``Phrase`` (for a refusal that quotes it and may be stored);
    in the active language as a plain text when it cannot be one (nested or translated
    params, no known code, params that do not fill the template)."""
    code, params = finding.get("code"), finding.get("params")
    known = TEMPLATES.get(code) if isinstance(code, str) else None
    if known is None or known.translated or not isinstance(params, Mapping):
        return localize_finding(finding)["message"]
    if any(isinstance(v, Mapping) for v in params.values()):
        return localize_finding(finding)["message"]
    try:
        known.message % params
    except (KeyError, TypeError, ValueError):
        return localize_finding(finding)["message"]
    return Phrase(known.message, params)
