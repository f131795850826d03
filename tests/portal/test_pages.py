"""The portal's pages: login, dashboard, tokens, API docs, language."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_home_sends_anonymous_visitors_to_the_login_page(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_renders_and_logs_in(alice):
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content

    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "alice-pass-123"}, follow=True
    )
    assert response.status_code == 200
    assert b"Vision Lab" in response.content


def test_wrong_password_shows_an_error(alice):
    response = Client().post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content
    assert b"password didn't match" in response.content


def test_login_page_speaks_japanese(db):
    response = Client(headers={"accept-language": "ja"}).get("/accounts/login/")
    assert "ログイン" in response.content.decode()


def test_language_switch_persists(alice):
    client = Client()
    client.post("/i18n/setlang/", {"language": "ja", "next": "/"})
    assert "ログイン" in client.get("/accounts/login/").content.decode()


def test_tokens_page_creates_shows_once_and_revokes(alice):
    client = Client()
    client.force_login(alice.user)
    created = client.post("/accounts/tokens/", {"name": "notebook"})
    token = ApiToken.objects.get(user=alice.user, name="notebook")
    html = created.content.decode()
    assert 'id="new-token"' in html
    assert f"{token.prefix}" in html

    again = client.get("/accounts/tokens/").content.decode()
    assert 'id="new-token"' not in again

    client.post(f"/accounts/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_tokens_page_cannot_revoke_someone_elses_token(alice, bob):
    client = Client()
    client.force_login(bob.user)
    alice_token = ApiToken.objects.get(user=alice.user)
    client.post(f"/accounts/tokens/{alice_token.pk}/revoke/")
    alice_token.refresh_from_db()
    assert alice_token.revoked_at is None


def test_api_docs_render_without_login(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()  # assets come from the sidecar package, not the internet


def test_schema_is_openapi_3_and_lists_me(db):
    response = Client().get("/api/schema/", headers={"accept": "application/json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/me/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_healthz_and_readyz(db):
    assert Client().get("/healthz").json() == {"status": "ok"}
    ready = Client().get("/readyz").json()
    assert ready == {"status": "ok", "checks": {"database": "ok"}}


def test_readyz_stays_ready_when_the_broker_is_unreachable(db, monkeypatch):
    # Celery's broker_url reads CELERY_BROKER_URL from the environment before its own
    # configuration; a Redis blip must not take every web pod out of the Service.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


def test_readyz_is_503_when_the_database_fails(db, monkeypatch):
    from django.db import OperationalError

    from portal import health

    def broken_cursor():
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "error: OperationalError"},
    }


def test_signed_in_user_gets_their_saved_language(bob):
    bob.user.language = "ja"
    bob.user.save()
    client = Client(headers={"accept-language": "en"})
    client.force_login(bob.user)
    assert "ダッシュボード" in client.get("/").content.decode()


def test_switching_language_saves_it_for_the_user(alice):
    client = Client()
    client.force_login(alice.user)
    client.post("/i18n/setlang/", {"language": "ja", "next": "/"})
    alice.user.refresh_from_db()
    assert alice.user.language == "ja"
    # A fresh browser (no cookie) gets the saved language too.
    other = Client(headers={"accept-language": "en"})
    other.force_login(alice.user)
    assert "ダッシュボード" in other.get("/").content.decode()


def test_unknown_language_is_ignored(alice):
    client = Client()
    client.force_login(alice.user)
    client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    alice.user.refresh_from_db()
    assert alice.user.language == "en"


def test_dashboard_shows_every_gpu_and_who_holds_it(alice, bob, vision):
    from datetime import timedelta

    from django.utils import timezone

    from scheduler.models import Job
    from scheduler.services.reservations import reserve_gpus
    from tests.scheduler.conftest import make_node

    node = make_node("tesla-01")
    make_node("tesla-02", cordoned=True)
    now = timezone.now()
    Job.objects.create(
        name="run",
        owner=bob.user,
        team=vision,
        image="x",
        gpus=1,
        max_runtime_s=3600,
        status="running",
        node=node,
        gpu_indices=[0],
        submitted_at=now,
        started_at=now,
    )
    reserve_gpus(
        alice.user,
        team=vision,
        node=node,
        gpu_indices=[1],
        start=now,
        end=now + timedelta(hours=2),
        now=now,
    )
    client = Client()
    client.force_login(alice.user)
    html = client.get("/").content.decode()
    board = html.split('id="gpu-board"')[1].split("</section>")[0]
    assert "job of bob" in board and "booked by alice" in board
    assert "cordoned" in board
    assert board.count('class="gpu free"') == 2  # tesla-02's two GPUs


def test_dashboard_shows_the_latest_utilization(alice, vision):
    from django.utils import timezone

    from scheduler.telemetry.models import GpuState
    from tests.scheduler.conftest import make_node

    node = make_node("tesla-01")
    GpuState.objects.create(gpu=node.gpus.get(index=0), at=timezone.now(), utilization=42.4)
    client = Client()
    client.force_login(alice.user)
    board = client.get("/").content.decode().split('id="gpu-board"')[1]
    assert '<span class="util">42%</span>' in board


def test_dashboard_draws_the_last_hours_utilization(alice, vision):
    from datetime import timedelta

    from django.utils import timezone

    from scheduler.services.board import utilization_sparklines
    from scheduler.telemetry.models import GpuMinute
    from tests.scheduler.conftest import make_node

    node = make_node("tesla-01")
    gpu = node.gpus.get(index=1)
    now = timezone.now()
    start = (now - timedelta(minutes=60)).replace(second=0, microsecond=0)
    for minutes_in, percent in ((10, 100.0), (11, 50.0), (59, 0.0)):
        GpuMinute.objects.create(
            gpu=gpu,
            minute=start + timedelta(minutes=minutes_in),
            samples=6,
            utilization_samples=6,
            utilization_sum=6 * percent,
        )
    GpuMinute.objects.create(
        gpu=gpu,
        minute=start - timedelta(minutes=5),
        samples=6,
        utilization_samples=6,
        utilization_sum=600.0,
    )  # too old
    assert utilization_sparklines(now=now) == {gpu.pk: "10,0.0 11,8.0 59,16.0"}
    client = Client()
    client.force_login(alice.user)
    board = client.get("/").content.decode().split('id="gpu-board"')[1]
    assert '<polyline points="10,0.0 11,8.0 59,16.0"/>' in board
    assert board.count('class="spark"') == 1  # GPU 0 has no readings: no line
