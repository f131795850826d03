"""The query state machine has one writer (``lifecycle.move``) and one table
(``querygate.states``), and a submission parses its SQL once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.utils import timezone
from sqlglot import parser as sqlglot_parser

from querygate import states
from querygate.errors import SqlError
from querygate.models import Query, QueryStatus
from querygate.services.admission import submit_query
from querygate.services.lifecycle import InvalidTransition, move

PACKAGE = Path(__file__).resolve().parents[2] / "querygate"


def test_the_table_names_every_status_and_final_ones_have_no_exit() -> None:
    assert set(states.ALLOWED) == set(states.ALL) == set(QueryStatus.values)
    for status in states.FINAL:
        assert states.ALLOWED[status] == frozenset(), status
    for targets in states.ALLOWED.values():
        assert targets <= set(states.ALL)


def test_move_refuses_an_edge_not_in_the_table(demo, bob) -> None:
    query = submit_query(bob.user, "demo", "SELECT 1 AS one", now=timezone.now())
    assert query.status == QueryStatus.SUCCEEDED
    with pytest.raises(InvalidTransition):
        move(query.pk, QueryStatus.SUCCEEDED, QueryStatus.RUNNING)
    # An allowed edge from a status the row is no longer in moves nothing.
    assert move(query.pk, QueryStatus.QUEUED, QueryStatus.RUNNING) == 0
    query.refresh_from_db()
    assert query.status == QueryStatus.SUCCEEDED


def _status_writes(tree: ast.AST) -> list[int]:
    """Lines that write a status: ``.update(status=...)``, ``x.status = ...`` or
    ``save(update_fields=[..."status"...])``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            keywords = {k.arg: k.value for k in node.keywords}
            if node.func.attr == "update" and "status" in keywords:
                lines.append(node.lineno)
            fields = keywords.get("update_fields")
            if node.func.attr == "save" and fields is not None:
                names = {c.value for c in ast.walk(fields) if isinstance(c, ast.Constant)}
                if "status" in names:
                    lines.append(node.lineno)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "status":
                    lines.append(node.lineno)
    return lines


def test_only_the_lifecycle_module_writes_a_query_status() -> None:
    writers = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts or path.name == "lifecycle.py":
            continue
        lines = _status_writes(ast.parse(path.read_text(), filename=str(path)))
        if lines:
            writers[str(path.relative_to(PACKAGE))] = lines
    # The one other line: admission mirrors a cache hit's new status on the object it
    # returns, right after move() wrote it.
    assert list(writers) == ["services/admission.py"]
    assert len(writers["services/admission.py"]) == 1
    source = (PACKAGE / "services/admission.py").read_text().splitlines()
    line = writers["services/admission.py"][0]
    assert source[line - 1].strip() == "query.status = QueryStatus.SUCCEEDED"
    assert "move(query.pk, QueryStatus.QUEUED, QueryStatus.SUCCEEDED" in source[line - 2]


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """Every statement list sqlglot's parser builds, by the SQL it was given."""
    seen: list[str] = []
    original = sqlglot_parser.Parser.parse

    def counting(self, raw_tokens, sql=None):
        seen.append(sql or "")
        return original(self, raw_tokens, sql)

    monkeypatch.setattr(sqlglot_parser.Parser, "parse", counting)
    return seen


SQL = "SELECT o_orderstatus, count(*) AS n FROM orders WHERE o_totalprice > 1000 GROUP BY 1"


def test_a_submission_parses_its_sql_once_from_analysis_to_result(demo, bob, parses) -> None:
    query = submit_query(bob.user, "demo", SQL, now=timezone.now(), inline=True)
    assert query.status == QueryStatus.SUCCEEDED, query.error
    assert query.analysis["explain_status"] == "ok"  # EXPLAIN was asked for, too
    assert parses.count(SQL) == 1
    # The engine ran the statement rendered from the judged tree, capped, with no re-parse.
    stored = Query.objects.get(pk=query.pk)
    assert stored.engine_sql.endswith(f"LIMIT {demo.row_cap + 1}")
    assert stored.fingerprint and stored.cache_key


def test_the_same_shape_gets_the_same_print_and_a_parse_error_a_text_print(demo, bob) -> None:
    now = timezone.now()
    one = submit_query(bob.user, "demo", "SELECT 1 AS a", now=now)
    two = submit_query(bob.user, "demo", "select 2 as a", now=now)
    assert one.fingerprint == two.fingerprint
    with pytest.raises(SqlError):
        submit_query(bob.user, "demo", "SELEC 1", now=now)
    broken = Query.objects.get(sql="SELEC 1")
    assert broken.fingerprint not in ("", one.fingerprint) and broken.engine_sql == ""
