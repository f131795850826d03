"""Personas and helpers shared by every test.

The personas (healthchecks' style) make permission tests read like the rule they check:

- alice   leads team "vision"            (a team owner)
- bob     is a member of "vision"        (a teammate)
- charlie leads "nlp", not in "vision"   (an outsider to vision)
- admin   is site staff, in no team      (an admin)

``demo`` is the query gate's DuckDB warehouse: TPC-H at sf=0.01, built once per session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import duckdb
import pytest
from django.core.servers.basehttp import WSGIServer
from django.utils import timezone, translation
from rest_framework.test import APIClient

from portal.accounts import services
from portal.accounts.models import Membership, Team, User
from querygate.analysis import TableStats
from querygate.engines import tpc
from querygate.engines.duckdb import DuckDBEngine
from querygate.models import Warehouse
from querygate.services.catalog import refresh_catalog

# pytest-django's live server listens with Django's backlog of 10 connections; a real
# deployment (gunicorn: 2048) queues far more. The concurrency tests open 50 at once.
WSGIServer.request_queue_size = 128


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """A private in-memory cache per test, so throttle counters never leak between tests."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{uuid.uuid4()}",
        }
    }


@pytest.fixture(autouse=True)
def _english_between_tests():
    """Each test starts in the site's language: a request answered in a user's language
    (a Japanese persona's) leaves it active in the test's thread, as a worker thread does."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def unlimited(vision):
    """Vision's booking policy without limits, for tests about something else."""
    from scheduler.models import TeamPolicy

    TeamPolicy.objects.update_or_create(
        team=vision,
        defaults={
            "max_booking_hours": None,
            "max_days_ahead": None,
            "max_gpus_per_user": None,
            "weekly_gpu_hours": None,
        },
    )


@pytest.fixture(autouse=True)
def _job_logs_dir(settings, tmp_path):
    """Archived job logs of each test in its own directory, never in VAR_DIR."""
    settings.KARIMASU_JOB_LOGS_DIR = tmp_path / "job-logs"


@dataclass
class Persona:
    user: User
    token: str

    def client(self) -> APIClient:
        """An API client that authenticates with this persona's Bearer token."""
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        return client


def make_user(username: str, *, staff: bool = False) -> User:
    return User.objects.create_user(
        username=username,
        password=f"{username}-pass-123",
        email=f"{username}@example.com",
        is_staff=staff,
    )


def make_persona(username: str, *, staff: bool = False) -> Persona:
    user = make_user(username, staff=staff)
    _, token = services.create_api_token(user, name="test", now=timezone.now())
    return Persona(user, token)


@pytest.fixture
def vision(db) -> Team:
    return Team.objects.create(slug="vision", name="Vision Lab")


@pytest.fixture
def nlp(db) -> Team:
    return Team.objects.create(slug="nlp", name="NLP Team")


@pytest.fixture
def alice(vision) -> Persona:
    persona = make_persona("alice")
    Membership.objects.create(team=vision, user=persona.user, role=Membership.Role.LEAD)
    return persona


@pytest.fixture
def bob(vision) -> Persona:
    persona = make_persona("bob")
    Membership.objects.create(team=vision, user=persona.user, role=Membership.Role.MEMBER)
    return persona


@pytest.fixture
def charlie(nlp) -> Persona:
    persona = make_persona("charlie")
    Membership.objects.create(team=nlp, user=persona.user, role=Membership.Role.LEAD)
    return persona


@pytest.fixture
def admin(db) -> Persona:
    return make_persona("admin", staff=True)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is the one JSON error shape with this status (and code, if given)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


class CatalogOnce:
    """The real engine, with its catalog read once per session (the scan costs a second)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._tables: list[TableStats] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def catalog(self) -> list[TableStats]:
        if self._tables is None:
            self._tables = self.engine.catalog()
        return self._tables


@pytest.fixture(scope="session")
def tpch_path(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("warehouse") / "tpch.duckdb")
    connection = duckdb.connect(path)
    tpc.generate(connection, "tpch", 0.01)
    connection.close()
    return path


@pytest.fixture(scope="session")
def duckdb_engine(tpch_path) -> CatalogOnce:
    return CatalogOnce(DuckDBEngine(tpch_path))


@pytest.fixture
def demo(db, tpch_path, duckdb_engine) -> Warehouse:
    """Warehouse ``demo``: the sf=0.01 TPC-H DuckDB file, open to all, catalog loaded."""
    warehouse = Warehouse.objects.create(
        name="demo", engine="duckdb", connection=tpch_path, open_to_all=True
    )
    refresh_catalog(warehouse.pk, now=timezone.now(), engine=duckdb_engine)
    warehouse.refresh_from_db()
    return warehouse
