"""``/api/v1/queries/`` through the real stack on the sf=0.01 TPC-H DuckDB warehouse ``demo``:
decisions, errors with positions, the audit row, the row cap, permissions and budgets."""

from __future__ import annotations

import pytest

from querygate.models import Query, Warehouse, WarehouseGrant
from tests.conftest import assert_error

URL = "/api/v1/queries/"
SMALL = "SELECT n_name, n_regionkey FROM nation WHERE n_regionkey = 1 ORDER BY n_name"


def submit(persona, sql: str = SMALL, **extra):
    return persona.client().post(URL, {"warehouse": "demo", "sql": sql, **extra}, format="json")


def test_an_allowed_query_runs_inline_and_returns_rows(demo, bob) -> None:
    response = submit(bob)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["decision"] == "allow" and body["status"] == "succeeded"
    assert body["mode"] == "inline"
    assert body["result"]["columns"] == ["n_name", "n_regionkey"]
    assert [r[0] for r in body["result"]["rows"]] == [
        "ARGENTINA",
        "BRAZIL",
        "CANADA",
        "PERU",
        "UNITED STATES",
    ]
    assert body["row_count"] == 5 and body["truncated"] is False
    assert body["team"] == "vision" and body["user"] == "bob"
    assert body["analysis"]["estimate"]["bytes_scanned"] > 0
    assert "explain" in body["analysis"]["estimate"]["source"]
    row = Query.objects.get(pk=body["id"])
    assert row.started_at >= row.created_at and row.finished_at >= row.started_at


def test_malformed_sql_is_a_400_with_line_and_column_and_is_audited(demo, bob) -> None:
    error = assert_error(
        submit(bob, "SELECT n_name\nFROM nation\nWHERE n_regionkey = = 1"), 400, "sql_error"
    )
    assert (error["details"]["line"], error["details"]["column"]) == (3, 21)
    assert "line 3" in error["message"]
    audit = Query.objects.get(pk=error["details"]["query_id"])
    assert audit.status == "rejected" and audit.decision == "reject"
    assert audit.user == bob.user and audit.started_at is None


def test_an_unknown_column_points_at_it(demo, bob) -> None:
    error = assert_error(submit(bob, "SELECT n_nam\nFROM nation"), 400, "sql_error")
    assert (error["details"]["line"], error["details"]["column"]) == (1, 8)
    assert "n_name" in error["details"]["findings"][0]["suggestion"]


def test_an_escape_hatch_is_rejected_with_a_finding_and_suggestion(demo, bob) -> None:
    error = assert_error(
        submit(bob, "SELECT * FROM read_csv('/etc/passwd')"), 400, "query_rejected"
    )
    finding = error["details"]["findings"][0]
    assert finding["rule"] == "table-function-not-allowed"
    assert finding["severity"] == "error" and finding["suggestion"]
    assert (finding["line"], finding["column"]) == (1, 15)
    assert Query.objects.get(pk=error["details"]["query_id"]).status == "rejected"


def test_a_policy_limit_rejects_with_its_reason(demo, bob) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(policy={"max_bytes_scanned": 100})
    error = assert_error(submit(bob), 400, "query_rejected")
    assert "over the limit" in error["details"]["reasons"][0]


def test_warn_needs_acknowledgement_then_runs(demo, bob) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(policy={"warn_bytes_scanned": 1})
    error = assert_error(submit(bob), 409, "acknowledgement_required")
    assert error["details"]["decision"] == "warn"
    # The message speaks to any client (a browser user has a button, not a JSON field);
    # the field to send is named in the details.
    assert "acknowledge_warnings" not in error["message"]
    assert error["details"]["acknowledge_field"] == "acknowledge_warnings"
    assert Query.objects.get(pk=error["details"]["query_id"]).status == "needs_ack"
    response = submit(bob, acknowledge_warnings=True)
    assert response.status_code in (201, 202), response.content
    body = response.json()
    assert body["acknowledged"] is True and body["decision"] == "warn"
    assert body["status"] in ("queued", "succeeded")


def test_the_row_cap_truncates_and_says_so(demo, bob) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(row_cap=7)
    body = submit(bob, "SELECT n_name FROM nation ORDER BY n_name").json()
    assert body["status"] == "succeeded"
    assert body["row_count"] == 7 and body["truncated"] is True
    page = bob.client().get(f"{URL}{body['id']}/results/", {"page": 2, "page_size": 5}).json()
    assert page["rows"] == [["EGYPT"], ["ETHIOPIA"]] and page["truncated"] is True
    csv = bob.client().get(f"{URL}{body['id']}/results/", {"download": "csv"})
    assert csv["Content-Type"].startswith("text/csv")
    assert b"".join(csv.streaming_content).decode().splitlines()[:2] == ["n_name", "ALGERIA"]


def test_an_execution_failure_still_leaves_its_audit_row(demo, bob) -> None:
    response = submit(bob, "SELECT CAST(n_name AS INTEGER) AS n FROM nation")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "failed" and "Conversion Error" in body["error"]["message"]
    audit = Query.objects.get(pk=body["id"])
    assert audit.decision == "allow" and audit.analysis["decision"] == "allow"


def test_outsiders_see_neither_the_query_nor_its_result(demo, bob, charlie) -> None:
    query_id = submit(bob).json()["id"]
    assert_error(charlie.client().get(f"{URL}{query_id}/"), 404)
    assert_error(charlie.client().get(f"{URL}{query_id}/results/"), 404)
    assert_error(charlie.client().post(f"{URL}{query_id}/cancel/"), 404)
    assert charlie.client().get(URL).json()["count"] == 0


def test_leads_see_their_teams_queries_but_only_owners_and_admins_cancel(
    demo, alice, bob, admin, django_assert_max_num_queries
) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(policy={"warn_bytes_scanned": 1})
    queued = submit(bob, acknowledge_warnings=True).json()  # large by policy: Celery, queued
    assert queued["status"] == "queued" and queued["mode"] == ""
    submit(alice, acknowledge_warnings=True)
    with django_assert_max_num_queries(6):
        listed = alice.client().get(URL).json()
    assert {q["user"] for q in listed["results"]} == {"alice", "bob"}
    assert bob.client().get(URL).json()["count"] == 1
    assert_error(alice.client().post(f"{URL}{queued['id']}/cancel/"), 403)
    cancelled = bob.client().post(f"{URL}{queued['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled" and cancelled["killed_by"] == "bob"
    assert_error(bob.client().post(f"{URL}{queued['id']}/cancel/"), 409, "not_running")
    other = submit(alice, acknowledge_warnings=True).json()
    killed = (
        admin.client()
        .post(f"{URL}{other['id']}/cancel/", {"reason": "too big"}, format="json")
        .json()
    )
    assert killed["status"] == "killed" and killed["kill_reason"] == "too big"
    assert killed["killed_by"] == "admin"


def test_history_filters(demo, bob) -> None:
    submit(bob)
    submit(bob, "SELECT nope FROM nation")
    client = bob.client()
    assert client.get(URL, {"status": "succeeded"}).json()["count"] == 1
    assert client.get(URL, {"decision": "reject"}).json()["count"] == 1
    assert client.get(URL, {"warehouse": "other"}).json()["count"] == 0
    assert client.get(URL, {"since": "2000-01-01T00:00:00Z"}).json()["count"] == 2
    assert_error(client.get(URL, {"since": "yesterday"}), 400)


def test_analyze_reports_without_running_or_auditing(demo, bob) -> None:
    response = bob.client().post(
        f"{URL}analyze/", {"warehouse": "demo", "sql": SMALL}, format="json"
    )
    assert response.status_code == 200, response.content
    report = response.json()
    assert {
        "decision",
        "reasons",
        "statement_type",
        "tables",
        "estimate",
        "findings",
        "error",
    } <= set(report)
    assert report["tables"] == ["main.nation"] and report["decision"] == "allow"
    assert set(report["estimate"]) >= {
        "rows",
        "bytes_scanned",
        "intermediate_rows",
        "runtime_s",
        "source",
    }
    assert report["explain"]["rows"] > 0
    assert Query.objects.count() == 0


def test_closed_warehouses_need_a_grant(demo, bob, charlie, vision) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(open_to_all=False)
    assert_error(
        charlie.client().post(URL, {"warehouse": "demo", "sql": SMALL}, format="json"),
        403,
        "warehouse_denied",
    )
    assert charlie.client().get("/api/v1/warehouses/").json()["count"] == 0
    # The editor's autocomplete reads the catalog: none for a warehouse one may not query.
    assert_error(charlie.client().get("/api/v1/warehouses/demo/catalog/"), 404)
    WarehouseGrant.objects.create(warehouse=demo, team=vision, role="member")
    assert submit(bob).status_code == 201
    assert bob.client().get("/api/v1/warehouses/demo/catalog/").status_code == 200
    assert_error(charlie.client().get("/api/v1/warehouses/demo/catalog/"), 404)


def test_writes_need_a_grant_that_allows_them(demo, bob, vision) -> None:
    error = assert_error(submit(bob, "DELETE FROM region"), 400, "query_rejected")
    assert error["details"]["findings"][0]["rule"] == "write-not-allowed"


def test_the_connection_is_shown_to_admins_only(demo, bob, admin) -> None:
    mine = bob.client().get("/api/v1/warehouses/demo/").json()
    assert "connection" not in mine and mine["name"] == "demo"
    assert admin.client().get("/api/v1/warehouses/demo/").json()["connection"] == demo.connection
    tables = bob.client().get("/api/v1/warehouses/demo/catalog/").json()
    assert {t["name"] for t in tables} >= {"lineitem", "orders"}


def test_daily_bytes_budget_and_concurrency_limit(demo, bob) -> None:
    first = submit(bob).json()
    Warehouse.objects.filter(pk=demo.pk).update(daily_bytes_per_user=first["bytes_estimate"] + 1)
    error = assert_error(submit(bob), 409, "budget_exceeded")
    assert "daily budget" in error["message"]
    assert Query.objects.get(pk=error["details"]["query_id"]).status == "rejected"
    Warehouse.objects.filter(pk=demo.pk).update(
        daily_bytes_per_user=None, max_concurrent_per_user=1, policy={"warn_bytes_scanned": 1}
    )
    assert submit(bob, acknowledge_warnings=True).json()["status"] == "queued"
    assert_error(submit(bob, acknowledge_warnings=True), 409, "budget_exceeded")


@pytest.mark.parametrize("who, allowed", [("alice", True), ("bob", False), ("admin", True)])
def test_leads_and_admins_override_a_rejection_with_a_justification(
    demo, alice, bob, admin, who: str, allowed: bool
) -> None:
    persona = {"alice": alice, "bob": bob, "admin": admin}[who]
    Warehouse.objects.filter(pk=demo.pk).update(policy={"max_bytes_scanned": 100})
    response = submit(persona, override_justification="quarterly report, checked with ops")
    if not allowed:
        assert_error(response, 403)
        return
    # Over the bytes limit: not "small", so it goes to a worker (202, queued).
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["decision"] == "reject" and body["status"] == "queued"
    assert body["override_by"] == who and "quarterly" in body["override_justification"]


def test_safety_rejections_cannot_be_overridden(demo, admin) -> None:
    assert_error(
        submit(admin, "SELECT * FROM read_csv('/etc/passwd')", override_justification="trust me"),
        400,
        "not_overridable",
    )


def test_the_result_cache_serves_the_same_normalized_query(demo, bob, alice) -> None:
    Warehouse.objects.filter(pk=demo.pk).update(result_cache_s=300)
    first = submit(bob).json()
    assert first["mode"] == "inline" and first["cached_from"] is None
    # Same query, other spelling: normalized by sqlglot to the same text.
    again = submit(alice, SMALL.lower().replace("order by", "\n  ORDER BY")).json()
    assert again["status"] == "succeeded" and again["mode"] == "cache"
    assert again["cached_from"] == first["id"]
    assert again["result"]["rows"] == first["result"]["rows"]
    other = submit(bob, SMALL.replace("= 1", "= 2")).json()
    assert other["cached_from"] is None
    Warehouse.objects.filter(pk=demo.pk).update(catalog_version=demo.catalog_version + 1)
    assert submit(bob).json()["cached_from"] is None  # a new catalog version: run again


def test_unknown_warehouse_and_bad_bodies_are_json_errors(demo, bob) -> None:
    assert_error(
        bob.client().post(URL, {"warehouse": "nope", "sql": SMALL}, format="json"), 404, "not_found"
    )
    assert_error(bob.client().post(URL, {"warehouse": "demo"}, format="json"), 400)
    assert_error(bob.client().get(f"{URL}999999/"), 404)


def test_analyze_reports_a_parse_error_with_its_position(demo, bob) -> None:
    report = (
        bob.client()
        .post(f"{URL}analyze/", {"warehouse": "demo", "sql": "SELECT FROM WHERE"}, format="json")
        .json()
    )
    assert report["decision"] == "reject" and report["error"]["kind"] == "parse"
    assert report["error"]["line"] == 1 and report["error"]["column"] >= 1


def test_severity_overrides_combine_and_bad_ones_are_a_clear_error():
    from django.core.exceptions import ValidationError

    from querygate.errors import InvalidPolicy
    from querygate.models import Warehouse
    from querygate.overrides import policy_from

    policy = policy_from(
        {"severity_overrides": {"select-star": "error"}},
        {"severity_overrides": {"order-by-random": "off"}},
        allow_writes=False,
    )
    assert dict(policy.severity_overrides) == {"select-star": "error", "order-by-random": "off"}
    with pytest.raises(InvalidPolicy, match="no-such-rule"):
        policy_from({"severity_overrides": {"no-such-rule": "warn"}}, allow_writes=False)
    warehouse = Warehouse(
        name="w",
        engine="duckdb",
        connection="warehouse.duckdb",
        policy={"severity_overrides": {"parse-error": "off"}},
    )
    with pytest.raises(ValidationError) as caught:
        warehouse.clean()
    assert "policy" in caught.value.message_dict
