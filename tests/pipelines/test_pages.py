"""The pipeline pages: the DAG drawn with each step's state, live regions that follow the
run, cancel and resume from the page, and nothing of another team's."""

from __future__ import annotations

import pytest

from pipelines.services import runs
from tests.pipelines.conftest import copy_inputs, now, three_steps

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(alice, demo, gpu_node):
    pipeline = runs.save_pipeline(
        alice.user, team_slug="vision", name="churn", definition=three_steps(), now=now()
    )
    return runs.start_run(alice.user, pipeline, now=now())


def _login(client, persona):
    client.force_login(persona.user)
    return client


def test_the_run_page_draws_the_dag_with_live_states(client, alice, run, driver):
    client = _login(client, alice)
    page = client.get(f"/pipeline-runs/{run.pk}/").content.decode()
    for step in ("features", "prep", "train"):
        assert f'data-step="{step}"' in page
    assert page.count("<line") == 2  # features -> prep -> train
    drive = driver({"prep": copy_inputs, "train": lambda s, o: "failed"})
    drive.step(run)
    live = client.get(f"/pipeline-runs/{run.pk}/?live=1").json()
    assert 'data-step="features" data-state="running"' in live["regions"]["dag"]["html"]
    assert live["stop"] is False
    drive.finish(run)
    live = client.get(f"/pipeline-runs/{run.pk}/?live=1").json()
    dag = live["regions"]["dag"]["html"]
    assert 'data-step="train" data-state="failed"' in dag
    assert 'data-step="prep" data-state="succeeded"' in dag
    assert live["stop"] is True


def test_cancel_and_resume_from_the_page(client, alice, run):
    client = _login(client, alice)
    response = client.post(f"/pipeline-runs/{run.pk}/", {"action": "cancel"})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"
    client.post(f"/pipeline-runs/{run.pk}/", {"action": "resume"})
    run.refresh_from_db()
    assert run.status == "running"


def test_another_teams_pipeline_is_a_404(client, charlie, run):
    client = _login(client, charlie)
    assert client.get(f"/pipeline-runs/{run.pk}/").status_code == 404
    assert client.get(f"/pipelines/{run.pipeline_id}/").status_code == 404
    assert "churn" not in client.get("/pipelines/").content.decode()


def test_the_pages_speak_japanese(client, bob, run):
    client = _login(client, bob)
    bob.user.language = "ja"
    bob.user.save()
    page = client.get(f"/pipeline-runs/{run.pk}/").content.decode()
    assert "実行中" in page and "キャンセル" in page  # the run's state, the cancel button
    page = client.get(f"/pipelines/{run.pipeline_id}/").content.decode()
    assert "今すぐ実行" in page
