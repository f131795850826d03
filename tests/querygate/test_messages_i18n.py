"""The gate's findings, suggestions, reasons and refusals in the reader's language (issue 18
item 1): every template has a Japanese translation, findings stored with (code, params) render
in Japanese for bob and as the stored English for alice, old findings without a code still
render, and the API's refusals and the SQL editor page speak the reader's language (the user's
setting, or ``Accept-Language`` on a token request)."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.utils import timezone, translation
from django.utils.translation import gettext

from portal.accounts.models import User
from querygate.analysis import analyze
from querygate.analysis.findings import TEMPLATES
from querygate.analysis.rules import __doc__ as rules_doc
from querygate.analysis.rules.statements import KNOWN_REFUSED
from querygate.errors import AcknowledgementRequired
from querygate.messages import localize_analysis, localize_finding, render
from querygate.models import Query, Warehouse
from querygate.services import admission
from tests.conftest import assert_error
from tests.querygate.analysis.catalogs import lab_catalog

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
CATALOG = lab_catalog()
URL = "/api/v1/queries/"
SMALL = "SELECT n_name, n_regionkey FROM nation WHERE n_regionkey = 1 ORDER BY n_name"

#: SQL that makes findings of many rules on the test catalog (rendered end to end below).
SAMPLES = [
    "SELECT * FROM orders, customer",
    "SELECT DISTINCT * FROM orders",
    "SELECT o_orderkey FROM orders ORDER BY random()",
    "SELECT o_orderkey FROM orders WHERE 1 = 1 OR o_orderkey = o_orderkey ORDER BY o_totalprice",
    "SELECT o_comment FROM orders WHERE o_comment LIKE '%x'",
    "SELECT o_orderkey FROM orders UNION SELECT l_orderkey FROM lineitem",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT read_text('/etc/passwd')",
    "SELECT * FROM 'data.csv'",
    "COPY orders TO '/tmp/x.csv'",
    "DELETE FROM orders",
    "SELECT FROM WHERE",
    "SELECT 1; SELECT 2",
    "",
    "SELECT nope FROM nation",
    "SELECT n_name FROM natoin",
    "SELECT x.n_name FROM nation",
    "SELECT * FROM range(10000000000000)",
    "SELECT repeat('x', 1000000000)",
]


def _templates():
    seen = set()
    for template in TEMPLATES.values():
        for text in (template.message, template.suggestion):
            if text and text not in seen:
                seen.add(text)
                yield template.code, text


def _rule_ids() -> set[str]:
    table = rules_doc.split("============================  ==========")[2]
    ids = {line.split()[0] for line in table.splitlines() if line[:1].isalpha()}
    return ids | {
        "parse-error",
        "multiple-statements",
        "empty-statement",
        "unknown-table",
        "unknown-column",
        "ambiguous-column",
    }


def _set_language(persona, language: str) -> None:
    User.objects.filter(pk=persona.user.pk).update(language=language)


def _submit(persona, sql: str = SMALL, **headers):
    return persona.client().post(URL, {"warehouse": "demo", "sql": sql}, format="json", **headers)


def test_every_rule_declares_templates() -> None:
    codes = {code.split(".")[0] for code in TEMPLATES}
    assert _rule_ids() <= codes, _rule_ids() - codes


@pytest.mark.parametrize(("code", "text"), list(_templates()))
def test_every_template_has_japanese_that_fills_with_its_params(code: str, text: str) -> None:
    with translation.override("ja"):
        translated = gettext(text)
    assert translated != text, f"no Japanese for {code}: {text}"
    assert JAPANESE.search(translated)
    assert set(PLACEHOLDER.findall(translated)) == set(PLACEHOLDER.findall(text))
    params = {name: f"<{name}>" for name in PLACEHOLDER.findall(text)}
    with translation.override("ja"):
        shown = render(code, params, "english", part=_part(code, text))
    assert shown != "english" and "<" in shown if params else JAPANESE.search(shown)


def _part(code: str, text: str) -> str:
    return "message" if TEMPLATES[code].message == text else "suggestion"


@pytest.mark.parametrize("sql", SAMPLES)
def test_findings_render_in_japanese_and_as_stored_english(sql: str) -> None:
    report = analyze(sql, dialect="duckdb", catalog=CATALOG)
    data = report.to_dict()
    assert data["findings"], sql
    with translation.override("en"):
        english = localize_analysis(data)
    assert english == data  # byte for byte what the analysis stored
    with translation.override("ja"):
        shown = localize_analysis(data)
    for stored, finding in zip(data["findings"], shown["findings"], strict=True):
        assert stored["code"] in TEMPLATES, stored
        assert JAPANESE.search(finding["message"]), finding
        assert finding["message"] != stored["message"]
        if stored["suggestion"]:
            assert JAPANESE.search(finding["suggestion"]), finding
    for reason in shown["reasons"]:
        assert JAPANESE.search(reason), reason


def test_a_stored_finding_without_a_usable_code_renders_as_stored() -> None:
    old = {"rule": "select-star", "severity": "warn", "message": "old text", "suggestion": "s"}
    with translation.override("ja"):
        assert localize_finding(old) == old
        assert localize_finding({**old, "code": "no-such-code", "params": {}}) == {
            **old,
            "code": "no-such-code",
            "params": {},
        }
        # params that do not fill the template: the stored text, never an exception
        bad = {**old, "code": "select-star", "params": {"nope": 1}}
        assert localize_finding(bad)["message"] == "old text"
        assert localize_finding({**old, "code": "select-star", "params": "x"}) == {
            **old,
            "code": "select-star",
            "params": "x",
        }


def test_api_refusals_speak_the_readers_language(demo, alice, bob) -> None:
    _set_language(bob, "ja")
    rejected = "SELECT * FROM read_csv('/etc/passwd')"
    error = assert_error(_submit(bob, rejected), 400, "query_rejected")
    assert error["message"].startswith("クエリゲートはこのクエリを拒否しました")
    assert JAPANESE.search(error["details"]["findings"][0]["message"])
    error = assert_error(_submit(alice, rejected), 400, "query_rejected")
    assert error["message"].startswith("The query gate rejected this query: ")
    assert "table-function-not-allowed: The table function read_csv()" in error["message"]

    error = assert_error(_submit(bob, "SELECT n_name\nFROM nation\nWHERE = = 1"), 400, "sql_error")
    assert error["message"].startswith("3 行") and "SQL を解析できません" in error["message"]
    error = assert_error(_submit(alice, "SELECT n_nam FROM nation"), 400, "sql_error")
    assert (
        error["message"]
        == "line 1, column 8: Column n_nam does not exist in the tables this query reads."
    )
    error = assert_error(_submit(bob, "SELECT n_nam FROM nation"), 400, "sql_error")
    assert "列 n_nam は" in error["message"]

    Warehouse.objects.filter(pk=demo.pk).update(policy={"warn_bytes_scanned": 1})
    error = assert_error(_submit(bob), 409, "acknowledgement_required")
    assert JAPANESE.search(error["message"])
    assert JAPANESE.search(error["details"]["reasons"][0])
    error = assert_error(_submit(alice), 409, "acknowledgement_required")
    assert error["message"] == "This query has warnings: read them and acknowledge them to run it."
    assert error["details"]["reasons"][0].startswith("scans about ")

    Warehouse.objects.filter(pk=demo.pk).update(policy={"max_bytes_scanned": 100})
    error = assert_error(_submit(bob), 400, "query_rejected")
    assert "上限" in error["message"] and "GiB" in error["message"]

    Warehouse.objects.filter(pk=demo.pk).update(policy={}, daily_bytes_per_user=1)
    error = assert_error(_submit(bob), 409, "budget_exceeded")
    assert "1 日の読み取り予算" in error["message"]
    error = assert_error(_submit(alice), 409, "budget_exceeded")
    assert "would pass your daily budget" in error["message"]


def test_accept_language_wins_over_the_saved_language_on_token_requests(demo, alice, bob) -> None:
    _set_language(bob, "ja")
    rejected = "SELECT * FROM read_csv('/etc/passwd')"
    error = assert_error(_submit(alice, rejected, HTTP_ACCEPT_LANGUAGE="ja"), 400, "query_rejected")
    assert JAPANESE.search(error["message"])
    error = assert_error(_submit(bob, rejected, HTTP_ACCEPT_LANGUAGE="en"), 400, "query_rejected")
    assert not JAPANESE.search(error["message"])


def test_the_analyze_endpoint_and_query_detail_render_for_the_reader(demo, bob) -> None:
    _set_language(bob, "ja")
    body = (
        bob.client()
        .post(
            URL + "analyze/",
            {"warehouse": "demo", "sql": "SELECT * FROM read_csv('/x')"},
            format="json",
        )
        .json()
    )
    assert body["findings"] and all(JAPANESE.search(f["message"]) for f in body["findings"])
    error = assert_error(_submit(bob, "SELECT * FROM read_csv('/x')"), 400, "query_rejected")
    detail = bob.client().get(f"{URL}{error['details']['query_id']}/").json()
    assert JAPANESE.search(detail["analysis"]["findings"][0]["suggestion"])
    assert JAPANESE.search(detail["reasons"][0])
    stored = Query.objects.get(pk=detail["id"])
    assert not JAPANESE.search(stored.reasons[0])  # the audit row keeps the English
    assert not JAPANESE.search(stored.analysis["findings"][0]["message"])


def _reopened(persona, query: Query) -> dict:
    client = Client()
    client.force_login(persona.user)
    page = client.get(f"/sql/?query={query.pk}").content.decode()
    match = re.search(
        r'<script id="sql-editor-config" type="application/json">(.*?)</script>', page, re.S
    )
    assert match, "the page carries its configuration"
    return json.loads(match.group(1))["query"]


def test_the_sql_editor_shows_japanese_findings_for_bob(demo, alice, bob) -> None:
    _set_language(bob, "ja")
    sql = "SELECT DISTINCT * FROM lineitem"
    for persona in (alice, bob):
        with pytest.raises(AcknowledgementRequired):
            admission.submit_query(persona.user, "demo", sql, now=timezone.now())
    mine = _reopened(bob, Query.objects.get(user=bob.user))
    rules = {f["rule"]: f for f in mine["analysis"]["findings"]}
    assert rules["distinct-star"]["message"].startswith(
        "SELECT DISTINCT * は行全体で重複を除きます"
    )
    assert all(JAPANESE.search(f["message"]) for f in rules.values())
    assert all(JAPANESE.search(reason) for reason in mine["reasons"])
    theirs = _reopened(alice, Query.objects.get(user=alice.user))
    stored = Query.objects.get(user=alice.user).analysis["findings"]
    assert theirs["analysis"]["findings"] == stored  # English: the stored bytes


@pytest.mark.parametrize("why", sorted(set(KNOWN_REFUSED.values())))
def test_every_refused_statement_reason_has_japanese(why: str) -> None:
    with translation.override("ja"):
        assert JAPANESE.search(gettext(why)), why


def test_a_refused_statement_says_why_in_japanese() -> None:
    data = analyze("COPY orders TO '/tmp/x.csv'", dialect="duckdb", catalog=CATALOG).to_dict()
    with translation.override("ja"):
        message = localize_finding(data["findings"][0])["message"]
    assert message.startswith("COPY はこのウェアハウスでは許可されていません")
    assert message.endswith("COPY はファイルを読み書きします（またはプログラムを実行します）")  # noqa: RUF001


def test_access_and_override_refusals_speak_the_readers_language(demo, alice, bob) -> None:
    _set_language(alice, "ja")
    response = alice.client().post(
        URL,
        {
            "warehouse": "demo",
            "sql": "SELECT * FROM read_csv('/x')",
            "override_justification": "needed",
        },
        format="json",
    )
    error = assert_error(response, 400, "not_overridable")
    assert error["message"] == "このクエリは上書き実行できません：table-function-not-allowed"  # noqa: RUF001
    Warehouse.objects.filter(pk=demo.pk).update(enabled=False)
    assert JAPANESE.search(assert_error(_submit(alice), 403, "warehouse_denied")["message"])
    error = assert_error(_submit(bob), 403, "warehouse_denied")
    assert error["message"] == "Warehouse demo is disabled."


def test_a_phrase_inside_a_finding_is_translated_with_it() -> None:
    data = analyze("SELECT * FROM range(1e30)", dialect="duckdb", catalog=CATALOG).to_dict()
    finding = data["findings"][0]
    assert finding["message"].startswith("range(1e30) generates more than 10^18 rows")
    assert finding["params"]["count"] == {"code": "phrase.more-than-1e18", "params": {}}
    with translation.override("ja"):
        shown = localize_finding(finding)["message"]
    assert shown.startswith("range(1e30) は 10^18 を超える 行を生成し")
    data = analyze("SELECT repeat('x', 1000000000)", dialect="duckdb", catalog=CATALOG).to_dict()
    with translation.override("ja"):
        assert "約 954 MiB" in localize_finding(data["findings"][0])["message"]


def test_hostile_nested_params_render_as_stored() -> None:
    stored = {"rule": "generator-too-large", "message": "stored", "code": "generator-too-large"}
    deep: dict = {"code": "phrase.about", "params": {"number": "1"}}
    for _ in range(10):
        deep = {"code": "phrase.about", "params": {"number": deep}}
    for count in (deep, {"code": "nope", "params": {}}, {"code": "phrase.about"}, {"x": 1}):
        params = {"text": "t", "count": count, "limit": "1"}
        with translation.override("ja"):
            assert localize_finding({**stored, "params": params})["message"] == "stored"


#: Malformed SQL of each shape of sqlglot's complaints: an incomplete expression, a missing
#: bracket, a missing table name, a stray token, an unclosed quote.
MALFORMED = [
    "SELECT * FROM orders WHERE o_orderkey =",
    "SELECT (1",
    "SELECT * FROM",
    "SELECT * FROM (SELECT 1) x JOIN",
    "SELECT 'abc",
    "SELECT 1 FROM orders WHERE )",
]


@pytest.mark.parametrize("sql", MALFORMED)
def test_a_parse_error_reads_whole_in_japanese_and_as_sqlglot_wrote_it_in_english(sql):
    report = analyze(sql, dialect="duckdb", catalog=CATALOG)
    (finding,) = [f.to_dict() for f in report.findings]
    assert finding["code"] == "parse-error"
    english = finding["message"]
    with translation.override("ja"):
        shown = localize_finding(finding)["message"]
    # No run of two English words is left (sqlglot's SQL tokens, such as ")", may stay).
    assert JAPANESE.search(shown) and not re.search(r"[A-Za-z]{2,} [a-z]{2,}", shown), shown
    with translation.override("en"):
        assert localize_finding(finding)["message"] == english
