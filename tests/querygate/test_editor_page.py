"""The SQL editor page (``/sql/``): who sees it, which warehouses it offers, reopening a
query, and its labels in the user's language. The script's behaviour is in
``tests/browser/test_sql_editor.py``."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from querygate.models import Warehouse
from querygate.services import admission

pytestmark = pytest.mark.django_db


def _client(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def _config(response) -> dict:
    match = re.search(
        r'<script id="sql-editor-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "the page carries its configuration"
    return json.loads(match.group(1))


def test_the_editor_needs_a_login(client) -> None:
    response = client.get("/sql/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_editor_offers_the_warehouses_the_user_may_query(alice, demo) -> None:
    Warehouse.objects.create(
        name="finance", engine="duckdb", connection=demo.connection, open_to_all=False
    )
    response = _client(alice).get("/sql/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<option value="demo" selected>demo (duckdb)</option>' in page
    assert "finance" not in page  # neither open to all nor granted to alice's team
    config = _config(response)
    assert config["urls"] == {
        "queries": "/api/v1/queries/",
        "analyze": "/api/v1/queries/analyze/",
        "warehouses": "/api/v1/warehouses/",
    }
    assert config["username"] == "alice"
    assert config["can_override"] is True  # alice leads vision
    assert config["query"] is None


def test_a_member_cannot_override_and_an_admin_sees_every_warehouse(bob, admin, demo) -> None:
    assert _config(_client(bob).get("/sql/"))["can_override"] is False
    Warehouse.objects.create(
        name="finance", engine="duckdb", connection=demo.connection, open_to_all=False
    )
    assert "finance (duckdb)" in _client(admin).get("/sql/").content.decode()


def test_without_a_warehouse_the_page_says_whom_to_ask(alice) -> None:
    page = _client(alice).get("/sql/").content.decode()
    assert "No warehouse is open to you yet" in page
    assert "sql-editor-config" not in page


def test_a_query_of_ones_own_reopens_with_its_sql_and_result(alice, bob, demo) -> None:
    sql = "SELECT n_name FROM nation ORDER BY n_name LIMIT 3"
    query = admission.submit_query(alice.user, "demo", sql, now=timezone.now())
    response = _client(alice).get(f"/sql/?query={query.pk}")
    assert f">{sql}</textarea>" in response.content.decode()
    reopened = _config(response)["query"]
    assert reopened["id"] == query.pk
    assert reopened["status"] == "succeeded"
    assert reopened["result"]["rows"] == [["ALGERIA"], ["ARGENTINA"], ["BRAZIL"]]
    # bob is no lead: alice's query is not his to see, so nothing is reopened for him
    other = _client(bob).get(f"/sql/?query={query.pk}")
    assert _config(other)["query"] is None
    assert sql not in other.content.decode()


def test_recent_queries_are_the_users_own_newest_first(alice, bob, demo) -> None:
    now = timezone.now()
    first = admission.submit_query(alice.user, "demo", "SELECT 1 AS one", now=now)
    second = admission.submit_query(alice.user, "demo", "SELECT 2 AS two", now=now)
    admission.submit_query(bob.user, "demo", "SELECT 3 AS three", now=now)
    page = _client(alice).get("/sql/").content.decode()
    recent = page[page.index('id="recent"') :]
    assert recent.index(f"?query={second.pk}") < recent.index(f"?query={first.pk}")
    assert "SELECT 3 AS three" not in recent


def test_the_labels_follow_the_users_language(alice, demo) -> None:
    alice.user.language = "ja"
    alice.user.save()
    response = _client(alice).get("/sql/")
    labels = _config(response)["labels"]
    assert labels["decision"]["reject"] != "Rejected: the gate will not run this query."
    assert labels["status"]["succeeded"] == "成功"
    assert "SQLエディタ" in response.content.decode()


def test_the_recent_queries_are_a_live_region(alice, bob, demo) -> None:
    client = _client(alice)
    before = client.get("/sql/?live=1").json()
    assert set(before["regions"]) == {"recent"} and before["stop"] is False
    assert "None yet." in before["regions"]["recent"]["html"]
    admission.submit_query(alice.user, "demo", "SELECT 7 AS seven", now=timezone.now())
    admission.submit_query(bob.user, "demo", "SELECT 8 AS eight", now=timezone.now())
    after = client.get("/sql/?live=1").json()["regions"]["recent"]
    assert after["v"] != before["regions"]["recent"]["v"]
    assert "SELECT 7 AS seven" in after["html"] and "SELECT 8" not in after["html"]


def test_the_page_loads_the_vendored_editor_and_names_the_chart_bundle(alice, demo) -> None:
    response = _client(alice).get("/sql/")
    assert 'src="/static/vendor/codemirror/editor.min.js"' in response.content.decode()
    config = _config(response)
    assert config["scripts"]["charts"] == "/static/vendor/chartjs/charts.min.js"
    assert config["warehouses"] == {"demo": {"engine": "duckdb", "row_cap": demo.row_cap}}
