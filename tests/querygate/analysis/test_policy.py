"""Policy: rule severity overrides (which rules may be re-graded, validation, effect on the
findings and the decision)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from querygate.analysis import Policy, Severity, analyze
from querygate.analysis.policy import LINT_RULES, SAFETY_RULES

from .catalogs import lab_catalog
from .test_golden import GOLDEN, load

CATALOG = lab_catalog()

STAR = "SELECT * FROM orders LIMIT 5"  # select-star warn on a large table
RANDOM = "SELECT o_orderkey FROM orders ORDER BY random() LIMIT 5"  # order-by-random warn


@pytest.mark.parametrize(
    ("sql", "overrides", "want_findings", "want_decision"),
    [
        pytest.param(STAR, {}, [("select-star", "warn")], "warn", id="no override: warn"),
        pytest.param(
            STAR,
            {"select-star": "error"},
            [("select-star", "error")],
            "reject",
            id="raised to error rejects",
        ),
        pytest.param(
            STAR, {"select-star": "info"}, [("select-star", "info")], "allow", id="info allows"
        ),
        pytest.param(STAR, {"select-star": "off"}, [], "allow", id="off drops the finding"),
        pytest.param(
            STAR, {"select-star": "ERROR"}, [("select-star", "error")], "reject", id="any case"
        ),
        pytest.param(
            STAR,
            {"order-by-random": "error"},
            [("select-star", "warn")],
            "warn",
            id="an override of another rule changes nothing",
        ),
        pytest.param(
            RANDOM,
            {"order-by-random": "off", "select-star": "error"},
            [],
            "allow",
            id="several overrides at once",
        ),
    ],
)
def test_severity_overrides_regrade_lint_findings(
    sql: str,
    overrides: dict[str, str],
    want_findings: list[tuple[str, str]],
    want_decision: str,
) -> None:
    policy = Policy(severity_overrides=overrides)
    report = analyze(sql, dialect="duckdb", catalog=CATALOG, policy=policy)
    assert [(f.rule, f.severity.value) for f in report.findings] == want_findings
    assert report.decision.value == want_decision


def test_an_error_lowered_to_warn_runs() -> None:
    sql = "SELECT count(*) FROM events"  # events requires a partition filter
    refused = analyze(sql, dialect="duckdb", catalog=CATALOG)
    assert [(f.rule, f.severity) for f in refused.findings] == [
        ("missing-partition-filter", Severity.ERROR)
    ]
    lowered = Policy(severity_overrides={"missing-partition-filter": "warn"})
    report = analyze(sql, dialect="duckdb", catalog=CATALOG, policy=lowered)
    assert report.decision.value == "warn"
    assert report.findings[0].message == refused.findings[0].message


@pytest.mark.parametrize(
    ("overrides", "want_message"),
    [
        pytest.param({"unknown-column": "off"}, "unknown-column is a safety", id="unknown column"),
        pytest.param({"parse-error": "warn"}, "parse-error is a safety", id="parse error"),
        pytest.param(
            {"function-not-allowed": "info"}, "function-not-allowed is a safety", id="escape hatch"
        ),
        pytest.param(
            {"write-not-allowed": "off"}, "write-not-allowed is a safety", id="write refusal"
        ),
        pytest.param({"select-str": "off"}, "unknown rule id 'select-str'", id="typo in rule id"),
        pytest.param(
            {"select-star": "fatal"}, "select-star has severity 'fatal'", id="unknown severity"
        ),
        pytest.param({"select-star": None}, "select-star has severity None", id="null severity"),
    ],
)
def test_bad_overrides_are_refused_when_the_policy_is_built(
    overrides: dict[str, str], want_message: str
) -> None:
    with pytest.raises(ValueError, match=want_message):
        Policy(severity_overrides=overrides)


def test_overrides_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="must map rule ids"):
        Policy(severity_overrides=["select-star"])  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", sorted(SAFETY_RULES))
def test_no_safety_rule_is_overridable(rule: str) -> None:
    assert rule not in LINT_RULES
    with pytest.raises(ValueError, match=rule):
        Policy(severity_overrides={rule: "off"})


def test_a_policy_built_from_json_overrides_is_a_plain_hashable_policy() -> None:
    # The services build a Policy with Policy(**json_overrides): the mapping arrives as JSON.
    policy = Policy(**{"severity_overrides": {"select-star": "error"}})
    assert policy.severity_overrides == {"select-star": "error"}
    assert hash(policy) == hash(Policy())  # the mapping is not part of the hash
    assert policy != Policy()
    assert dataclasses.replace(policy, max_joins=3).severity_overrides == {"select-star": "error"}


def _golden_rule_ids() -> set[str]:
    rules = set()
    for path in sorted(Path(GOLDEN).glob("*.sql")):
        rules |= {rule for rule, *_ in load(path).expected}
    return rules


def test_every_rule_id_is_either_lint_or_safety() -> None:
    assert not LINT_RULES & SAFETY_RULES
    assert _golden_rule_ids() <= LINT_RULES | SAFETY_RULES
    assert _golden_rule_ids() >= LINT_RULES  # every lint rule has a golden file


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted(GOLDEN.glob("*.sql"))
        if any(r in SAFETY_RULES for r, *_ in load(p).expected)
    ],
    ids=lambda p: p.stem,
)
def test_turning_every_lint_rule_off_keeps_safety_findings(path: Path) -> None:
    case = load(path)
    all_off = dataclasses.replace(case.policy, severity_overrides=dict.fromkeys(LINT_RULES, "off"))
    report = analyze(
        case.sql, dialect=case.dialect, catalog=lab_catalog(_schema(case.dialect)), policy=all_off
    )
    want = [(r, s) for r, s, *_ in case.expected if r in SAFETY_RULES]
    assert [(f.rule, f.severity.value) for f in report.findings] == want
    assert report.decision.value == "reject"


def _schema(dialect: str) -> str:
    return {"duckdb": "main", "postgres": "public"}[dialect]
