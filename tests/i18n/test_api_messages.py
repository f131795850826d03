"""Server-made messages of the query gate, the pipelines and the API plumbing in the reader's
language (issue 18 item 1): Japanese for a request with ``Accept-Language: ja`` and for a
token request of a user whose setting is ja, English otherwise. Messages stored by
background work (a query's failure, a pipeline run's and step's messages) are rendered when
shown, for whoever reads them; an engine's own text stays as the engine wrote it."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone, translation

from pipelines.models import PipelineRun, StepRun
from pipelines.services import runs
from portal.accounts.services import set_language
from portal.phrases import phrase, render, stored
from querygate.messages import LOST_QUEUED, stored_error
from querygate.models import Query, Warehouse
from tests.conftest import assert_error
from tests.pipelines.conftest import FEATURES_SQL, Driver, three_steps
from tests.scheduler.conftest import make_node

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
JA = {"HTTP_ACCEPT_LANGUAGE": "ja"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
SMALL = "SELECT n_name FROM nation WHERE n_regionkey = 1"

pytestmark = pytest.mark.django_db


def _set_language(persona, language: str) -> None:
    """As the settings page saves it (a token's cached lookup must not keep the old one)."""
    set_language(persona.user, language)


@pytest.fixture
def gpu_node(db):
    return make_node("tesla-01", 2)


@pytest.fixture
def datasets_dir(settings, tmp_path):
    settings.QUERYGATE_RESULTS_DIR = tmp_path / "query-results"
    settings.PIPELINES_DATASETS_DIR = tmp_path / "datasets"


# --- the gate: not found, permission, results, parameters -------------------------------


def test_gate_not_found_and_permission_by_header_and_by_setting(demo, alice, bob) -> None:
    error = assert_error(alice.client().get("/api/v1/queries/999999/", **JA), 404, "not_found")
    assert error["message"] == "見つかりません。"  # not Django's "No Query matches ..."
    error = assert_error(alice.client().get("/api/v1/queries/999999/"), 404, "not_found")
    assert error["message"] == "Not found."
    error = assert_error(alice.client().post("/api/v1/queries/999999/cancel/", **JA), 404)
    assert error["message"] == "クエリが見つかりません。"

    response = alice.client().post(
        "/api/v1/queries/", {"warehouse": "demo", "sql": SMALL}, format="json"
    )
    query_id = response.json()["id"]
    _set_language(bob, "ja")  # no header: bob's setting decides
    error = assert_error(bob.client().post(f"/api/v1/queries/{query_id}/cancel/"), 404)
    assert error["message"] == "クエリが見つかりません。"  # another's query: not even there
    error = assert_error(bob.client().post(f"/api/v1/queries/{query_id}/cancel/", **EN), 404)
    assert error["message"] == "Query not found."

    error = assert_error(alice.client().post(f"/api/v1/queries/{query_id}/cancel/", **JA), 409)
    assert error["code"] == "not_running" and error["message"].startswith("クエリはすでに")

    results = f"/api/v1/queries/{query_id}/results/"
    error = assert_error(alice.client().get(results, {"download": "zip"}, **JA), 400)
    assert error["message"] == "download には csv、parquet、arrow のいずれかを指定してください。"
    error = assert_error(alice.client().get(results, {"page": "x"}, **JA), 400)
    assert error["message"] == "page は整数にしてください。"
    error = assert_error(alice.client().get(results, {"page": "x"}), 400)
    assert error["message"] == "page must be an integer."


def test_a_stored_query_error_renders_for_each_reader(demo, alice, bob) -> None:
    """The worker stored the English and the code; bob reads Japanese, alice the bytes."""
    response = alice.client().post(
        "/api/v1/queries/", {"warehouse": "demo", "sql": SMALL}, format="json"
    )
    query = Query.objects.get(pk=response.json()["id"])
    engine_text = 'Binder Error: Referenced column "nope" not found'
    from querygate.messages import ENGINE_REFUSED

    Query.objects.filter(pk=query.pk).update(
        error=stored_error(ENGINE_REFUSED, error=engine_text),
        kill_reason="killed by an admin",
    )
    shown = alice.client().get(f"/api/v1/queries/{query.pk}/", **JA).json()
    assert shown["error"]["message"] == f"ウェアハウスがクエリを拒否しました：{engine_text}"  # noqa: RUF001
    assert shown["kill_reason"] == "管理者が停止"
    shown = alice.client().get(f"/api/v1/queries/{query.pk}/").json()
    assert shown["error"]["message"] == f"The warehouse refused the query: {engine_text}"
    assert shown["kill_reason"] == "killed by an admin"

    Query.objects.filter(pk=query.pk).update(
        error=stored_error(LOST_QUEUED, seconds="300"), kill_reason="too slow, sorry"
    )
    _set_language(alice, "ja")
    shown = alice.client().get(f"/api/v1/queries/{query.pk}/").json()
    assert shown["error"]["message"].startswith("300 秒以内にこのクエリを開始したワーカー")
    assert shown["kill_reason"] == "too slow, sorry"  # a person's words, as written
    listed = alice.client().get("/api/v1/queries/").json()
    assert listed["results"][0]["error"]["message"] == shown["error"]["message"]

    # Written before codes existed, or tampered with: shown as stored.
    for error in (
        {"message": "old text"},
        {"message": "old text", "code": "lost-queued", "params": {"nope": 1}},
        {"message": "old text", "code": "lost-queued", "params": "x"},
        {"message": "old text", "code": ["x"], "params": {}},
    ):
        Query.objects.filter(pk=query.pk).update(error=error)
        shown = alice.client().get(f"/api/v1/queries/{query.pk}/").json()
        assert shown["error"]["message"] == "old text", error


def test_a_real_engine_failure_keeps_the_engine_text_after_a_translated_lead(demo, bob) -> None:
    _set_language(bob, "ja")
    response = bob.client().post(
        "/api/v1/queries/",
        {"warehouse": "demo", "sql": "SELECT CAST(n_name AS INTEGER) FROM nation"},
        format="json",
    )
    assert response.status_code == 201, response.content
    query = Query.objects.get(pk=response.json()["id"])
    assert query.status == "failed", query.error
    english = query.error["message"]
    assert english.startswith("The warehouse refused the query: ")
    engine_text = english.removeprefix("The warehouse refused the query: ")
    assert engine_text and not JAPANESE.search(engine_text)
    shown = bob.client().get(f"/api/v1/queries/{query.pk}/").json()["error"]["message"]
    assert shown == f"ウェアハウスがクエリを拒否しました：{engine_text}"  # noqa: RUF001


# --- the API plumbing: parse errors, size, unknown routes, DRF's own messages -------------


def test_plumbing_errors_in_japanese_and_english(alice) -> None:
    client = alice.client()
    for headers, expected in (
        (JA, "1 行 2 列の JSON が不正です"),
        (EN, "Malformed JSON at line 1"),
    ):
        error = assert_error(
            client.post("/api/v1/tokens/", "{x", content_type="application/json", **headers),
            400,
            "malformed_json",
        )
        assert error["message"].startswith(expected), error
        assert error["details"] == {"line": 1, "column": 2}

    nul = '{"name": "a\\u0000b"}'
    error = assert_error(
        client.post("/api/v1/tokens/", nul, content_type="application/json", **JA), 400
    )
    assert error["details"] == {"name": ["NUL 文字を含めることはできません。"]}

    error = assert_error(client.get("/api/v1/no-such-thing/", **JA), 404)
    assert error["message"] == "GET /api/v1/no-such-thing/ に API エンドポイントはありません。"

    # Refused by the middleware before Django's LocaleMiddleware ran: the header still counts.
    big = "x" * 3_000_000
    error = assert_error(
        Client().post("/api/v1/tokens/", big, content_type="application/json", **JA), 413
    )
    assert error["message"].startswith("リクエスト本文が") and error["code"] == "payload_too_large"


def test_drf_field_errors_come_from_drfs_japanese_catalog(alice) -> None:
    client = alice.client()
    body = {"name": "", "expires_in_days": "soon"}
    error = assert_error(client.post("/api/v1/tokens/", body, format="json", **JA), 400, "invalid")
    assert error["details"]["expires_in_days"] == ["有効な整数を入力してください。"]
    assert JAPANESE.search(error["message"])
    error = assert_error(client.post("/api/v1/tokens/", body, format="json"), 400, "invalid")
    assert error["details"]["expires_in_days"] == ["A valid integer is required."]

    _set_language(alice, "ja")
    error = assert_error(client.post("/api/v1/tokens/", body, format="json"), 400, "invalid")
    assert error["details"]["expires_in_days"] == ["有効な整数を入力してください。"]


def test_authentication_failures_by_header(db) -> None:
    client = Client()
    for headers, expected in ((JA, "トークンが不正か、期限切れか、失効しています。"),
                              (EN, "Invalid, expired or revoked token.")):  # fmt: skip
        error = assert_error(
            client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer nope", **headers), 401
        )
        assert error["message"] == expected


def test_accounts_refusals_by_setting(alice) -> None:
    _set_language(alice, "ja")
    error = assert_error(alice.client().delete("/api/v1/tokens/999999/"), 404, "not_found")
    assert error["message"] == "そのトークンはありません。"
    error = assert_error(alice.client().delete("/api/v1/tokens/999999/", **EN), 404)
    assert error["message"] == "No such token."


# --- pipelines: definition errors with their paths, access, run messages -----------------


def test_definition_errors_name_the_path_in_the_readers_language(alice, demo) -> None:
    bad = {"steps": [{"name": "a", "kind": "container", "image": "x", "after": ["b"]}]}
    body = {"name": "p", "team": "vision", "definition": bad}
    error = assert_error(
        alice.client().post("/api/v1/pipelines/", body, format="json", **JA),
        400,
        "invalid_pipeline",
    )
    assert error["message"] == "steps[0].after：'b' という名前のステップはありません"  # noqa: RUF001
    assert error["details"] == {"steps[0].after": ["'b' という名前のステップはありません"]}
    error = assert_error(
        alice.client().post("/api/v1/pipelines/", body, format="json"), 400, "invalid_pipeline"
    )
    assert error["message"] == "steps[0].after: no step is named 'b'"

    body["definition"] = {"steps": [{"name": "a", "kind": "shell"}]}
    error = assert_error(alice.client().post("/api/v1/pipelines/", body, format="json", **JA), 400)
    assert error["details"]["steps[0].kind"] == ["query, container のいずれかにしてください"]


def test_pipeline_access_errors(alice, bob, charlie, demo, gpu_node, datasets_dir) -> None:
    _set_language(charlie, "ja")
    error = assert_error(charlie.client().get("/api/v1/pipeline-runs/999999/"), 404)
    assert error["message"] == "パイプラインの実行 999999 はありません。"
    pipeline = runs.save_pipeline(
        alice.user, team_slug="vision", name="churn", definition=three_steps(), now=timezone.now()
    )
    error = assert_error(charlie.client().post(f"/api/v1/pipelines/{pipeline.pk}/run/"), 404)
    assert error["message"] == f"パイプライン {pipeline.pk} はありません。"
    _set_language(bob, "ja")
    run = runs.start_run(alice.user, pipeline, now=timezone.now())
    error = assert_error(bob.client().post(f"/api/v1/pipeline-runs/{run.pk}/cancel/"), 403)
    assert error["message"] == (
        "パイプラインを変更できるのは、所有者・チームのリード・管理者だけです。"
    )


def test_stored_run_and_step_messages_render_for_each_reader(
    alice, bob, demo, gpu_node, datasets_dir
) -> None:
    pipeline = runs.save_pipeline(
        alice.user, team_slug="vision", name="churn", definition=three_steps(), now=timezone.now()
    )
    run = runs.start_run(alice.user, pipeline, now=timezone.now())
    with translation.override("ja"):  # the language of whoever acts does not leak into storage
        runs.cancel_run(alice.user, run, now=timezone.now())
    run = PipelineRun.objects.get(pk=run.pk)
    assert run.message == "Cancelled by alice."
    assert StepRun.objects.filter(run=run, message="Cancelled.").exists()

    _set_language(bob, "ja")
    shown = bob.client().get(f"/api/v1/pipeline-runs/{run.pk}/").json()
    assert shown["message"] == "alice が取り消しました。"
    assert "取り消しました。" in {s["message"] for s in shown["steps"]}
    shown = alice.client().get(f"/api/v1/pipeline-runs/{run.pk}/").json()
    assert shown["message"] == "Cancelled by alice."
    assert "Cancelled." in {s["message"] for s in shown["steps"]}

    bob_session = Client()
    bob_session.force_login(bob.user)
    page = bob_session.get(f"/pipeline-runs/{run.pk}/").content.decode()
    assert "alice が取り消しました。" in page and "Cancelled by alice." not in page


def test_phrases_nest_and_fall_back_to_the_stored_text() -> None:
    with translation.override("ja"):
        inner = phrase("Cancelled by %(user)s.", user="alice")
        outer = phrase(
            "Attempt %(attempt)s failed: %(message)s; retrying.", attempt=2, message=inner
        )
        assert outer == "2 回目の試行が失敗しました（alice が取り消しました。）。再試行します。"  # noqa: RUF001
    english, data = stored(outer)
    assert english == "Attempt 2 failed: Cancelled by alice.; retrying."
    with translation.override("ja"):
        assert render(english, data) == outer
    with translation.override("en"):
        assert render(english, data) == english
    assert stored("plain text") == ("plain text", {})
    hostile = [
        {},
        {"msgid": 5, "params": {}},
        {"msgid": "Cancelled by %(user)s.", "params": {}},
        {"msgid": "Cancelled by %(user)s.", "params": {"user": {"msgid": "x"}}},
        {"msgid": "%(a)s", "params": {"a": {"msgid": "%(a)s", "params": {"a": {}}}}},
        "not a dict",
    ]
    deep: dict = {"msgid": "Failed: %(steps)s.", "params": {"steps": "x"}}
    for _ in range(20):
        deep = {"msgid": "Failed: %(steps)s.", "params": {"steps": deep}}
    hostile.append(deep)
    with translation.override("ja"):
        for data in hostile:
            assert render("stored", data) == "stored", data


def test_a_refusal_at_launch_is_stored_and_shown_in_each_readers_language(
    alice, bob, demo, duckdb_engine, datasets_dir
) -> None:
    """The worker launches the step; the gate refuses it (the budget ran out after the run
    started): the step's message is the gate's, rendered for whoever reads it."""
    step = {"name": "features", "kind": "query", "warehouse": "demo", "sql": FEATURES_SQL,
            "dataset": "features"}  # fmt: skip
    pipeline = runs.save_pipeline(
        alice.user,
        team_slug="vision",
        name="churn",
        definition={"steps": [step]},
        now=timezone.now(),
    )
    run = runs.start_run(alice.user, pipeline, now=timezone.now())
    Warehouse.objects.filter(pk=demo.pk).update(daily_bytes_per_user=1)
    run = Driver(duckdb_engine, {}).finish(run)
    assert run.status == "failed"
    row = StepRun.objects.get(run=run)
    assert row.message.startswith("This query (about ") and "daily budget" in row.message

    _set_language(bob, "ja")
    shown = bob.client().get(f"/api/v1/pipeline-runs/{run.pk}/").json()
    assert "1 日の読み取り予算" in shown["steps"][0]["message"], shown
    assert "1 日の読み取り予算" in shown["steps"][0]["history"][0]["message"]
    assert shown["message"] == "失敗：features。"  # noqa: RUF001
    shown = alice.client().get(f"/api/v1/pipeline-runs/{run.pk}/").json()
    assert shown["steps"][0]["message"] == row.message
    assert shown["message"] == "Failed: features."
