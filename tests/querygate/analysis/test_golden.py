"""Golden files (sqlglot's fixtures style): ``golden/*.sql``, one case each.

A file starts with header comments, then the SQL::

    -- dialect: duckdb                    (required)
    -- decision: warn                     (required: allow, warn or reject)
    -- policy: max_joins=1, allow_writes=true   (optional Policy overrides)
    -- expect: cartesian-join warn 2:19   (one per expected finding: rule, severity, line:col)
    -- suggestion: LIMIT 1000             (optional: some finding's suggestion contains it)
    -- message: pg_read_file()            (optional: some finding's message contains it)

Lines and columns count from the first line after the header. A file without ``expect``
lines expects no finding at all. The catalog is ``lab_catalog`` (TPC-H SF1 and lab tables)
in the dialect's default schema (``main`` for DuckDB, ``public`` for PostgreSQL).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from querygate.analysis import Policy, analyze

from .catalogs import lab_catalog

GOLDEN = Path(__file__).parent / "golden"
SCHEMAS = {"duckdb": "main", "postgres": "public"}
CATALOGS = {dialect: lab_catalog(schema) for dialect, schema in SCHEMAS.items()}


@dataclasses.dataclass
class Case:
    dialect: str
    decision: str
    sql: str
    expected: list[tuple[str, str, int, int]]
    suggestions: list[str]
    messages: list[str]
    policy: Policy


def _policy(text: str) -> Policy:
    overrides: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, value = (s.strip() for s in item.split("=", 1))
        overrides[key] = value == "true" if value in ("true", "false") else int(value)
    return Policy(**overrides)  # type: ignore[arg-type]


def load(path: Path) -> Case:
    """Parse one golden file into its header fields and SQL body."""
    lines = path.read_text().splitlines(keepends=True)
    header: list[tuple[str, str]] = []
    while lines and lines[0].startswith("-- ") and ":" in lines[0]:
        key, value = lines.pop(0)[3:].split(":", 1)
        header.append((key.strip(), value.strip()))
    fields = dict(header)
    expected = []
    for key, value in header:
        if key == "expect":
            rule, severity, position = value.split()
            line, column = position.split(":")
            expected.append((rule, severity, int(line), int(column)))
    return Case(
        dialect=fields["dialect"],
        decision=fields["decision"],
        sql="".join(lines),
        expected=sorted(expected, key=lambda e: (e[2], e[3], e[0])),
        suggestions=[v for k, v in header if k == "suggestion"],
        messages=[v for k, v in header if k == "message"],
        policy=_policy(fields.get("policy", "")),
    )


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.sql")), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    case = load(path)
    report = analyze(
        case.sql, dialect=case.dialect, catalog=CATALOGS[case.dialect], policy=case.policy
    )
    got = [(f.rule, f.severity.value, f.line, f.column) for f in report.findings]
    assert got == case.expected, [f.message for f in report.findings]
    assert report.decision.value == case.decision, report.reasons
    for wanted in case.messages:
        assert any(wanted in f.message for f in report.findings), [
            f.message for f in report.findings
        ]
    for wanted in case.suggestions:
        assert any(wanted in f.suggestion for f in report.findings), [
            f.suggestion for f in report.findings
        ]


def test_every_rule_has_a_golden_file() -> None:
    """Each rule id the analysis can emit appears in some golden file's expectations."""
    from querygate.analysis.rules import GATE_RULES, RULES, SYNTAX_RULES

    expected_rules = {e[0] for p in GOLDEN.glob("*.sql") for e in load(p).expected}
    names = {rule.__name__ for rule in GATE_RULES + SYNTAX_RULES + RULES}
    assert len(names) == 19
    wanted = {
        "cartesian-join",
        "always-true-join",
        "exploding-join",
        "select-star",
        "unbounded-result",
        "order-without-limit",
        "order-by-random",
        "distinct-star",
        "union-distinct",
        "always-true-where",
        "leading-wildcard-like",
        "missing-partition-filter",
        "unprunable-partition-filter",
        "unbounded-recursive-cte",
        "excessive-complexity",
        "function-not-allowed",
        "table-function-not-allowed",
        "statement-not-allowed",
        "file-path-table",
        "write-not-allowed",
        "parse-error",
        "unknown-table",
        "unknown-column",
        "multiple-statements",
        "ambiguous-column",
        "unbounded-generator",
        "generator-too-large",
        "value-too-large",
    }
    assert wanted <= expected_rules
