"""Issue 18: every API error code, in Japanese, for a Japanese user.

The codes come from the source (``tests/i18n/error_codes.py``, an AST scan), so a new code
is covered the day it is written: each must be answered to at least one request made here
(``TRIGGERS``), or be listed in ``UNREACHABLE`` with the reason no request can produce it.
Each error's ``message`` and the texts in its ``details`` must pass the English detector
(``tests/i18n/english.py``). The walk runs twice: bob asks with ``Accept-Language: ja``
(his saved language English), and bob asks with no header (his saved language Japanese).

Where a code needs a lead or an admin (only they may try the thing refused), alice or an
admin asks, in the same language setup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import make_persona
from tests.i18n import english
from tests.i18n.error_codes import scan

pytestmark = pytest.mark.django_db

# Codes no API request can produce, and why. Keep it short: each entry is a hole in the walk.
UNREACHABLE = {
    "busy": "a cancel racing another change of the same job on every retry (a race)",
    "invalid_transition": "two workers moving one job or query at once (a race); the API "
    "checks the state first and answers its own code",
    "step_refused": "a pipeline step's failure, kept on the step run (shown on the run "
    "page, walked by test_walk_pages), never an API response",
    "bad_output": "a pipeline step's failure, kept on the step run, never an API response",
    "empty_output": "a pipeline step's failure, kept on the step run, never an API response",
    "result_truncated": "a pipeline step's failure, kept on the step run, never an API response",
    "result_storage_failed": "a query's result failing to be written (disk full), kept on "
    "the query row, never an API response",
    "unavailable": "the default code of a 503, which no API view answers (readyz has its own body)",
}


@dataclass
class Recorder:
    """Every JSON error answered to the walk's requests: code -> [(request, body)]."""

    seen: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def record(self, what: str, response: Any) -> Any:
        if response.status_code >= 400 and response.get("Content-Type", "").startswith(
            "application/json"
        ):
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and "code" in error:
                self.seen.setdefault(error["code"], []).append((what, error))
        return response


class Api:
    """An APIClient for one persona that records every error it is answered."""

    def __init__(self, recorder: Recorder, token: str | None, headers: dict[str, str]):
        self.recorder = recorder
        self.client = APIClient(headers=headers)
        if token:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(url: str, data: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("format", "json") if "content_type" not in kwargs else None
            response = getattr(self.client, method)(url, data, **kwargs)
            return self.recorder.record(f"{method.upper()} {url}", response)

        return call


@dataclass
class Walk:
    bob: Api
    lead: Api  # alice, vision's lead
    admin: Api
    anonymous: Api
    world: Any
    settings: Any
    monkeypatch: Any


def _job_request(**fields: Any) -> dict[str, Any]:
    return {
        "name": "resnet-walk", "team": "vision", "image": "pytorch/pytorch:2.4",
        "max_runtime_s": 600, "gpus": 1, **fields,
    }  # fmt: skip


# -- triggers: each makes the requests that answer some codes --------------------------------


def framework_errors(w: Walk) -> None:
    w.anonymous.get("/api/v1/me/")  # not_authenticated
    w.bob.get("/api/v1/jobs/999999/")  # not_found
    w.bob.delete("/api/v1/me/")  # method_not_allowed
    w.bob.post("/api/v1/jobs/", {})  # invalid (validation)
    w.bob.post("/api/v1/jobs/", "{bad", content_type="application/json")  # malformed_json
    w.bob.post("/api/v1/tokens/", "name=x", content_type="application/x-www-form-urlencoded")
    w.bob.get("/api/v1/jobs/", HTTP_ACCEPT="text/x-unknown")  # not_acceptable
    w.bob.post("/api/v1/pipelines/", "name: p\nteam: [vision\n", content_type="application/yaml")
    w.bob.get("/api/v1/nosuch/")  # not_found outside DRF
    w.bob.get("/api/v1/priority-classes/nosuch/")


def too_large(w: Walk) -> None:
    w.settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"name": "' + "x" * 2000 + '"}'
    w.bob.post("/api/v1/tokens/", body, content_type="application/json")
    w.settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440


def bad_request(w: Walk) -> None:
    # A header Django refuses (a Host not allowed): Django's 400, outside DRF.
    w.bob.get("/api/v1/me/", HTTP_HOST="evil.example")


def throttled(w: Walk) -> None:
    w.settings.REST_FRAMEWORK = {
        **w.settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "2/min", "anon": "2/min"},
    }
    for _ in range(4):
        w.bob.get("/api/v1/me/")
    w.settings.REST_FRAMEWORK = {
        **w.settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "anon": "100000/min"},
    }
    from django.core.cache import cache

    cache.clear()


def server_error(w: Walk) -> None:
    # Any crash in a view: the handler's 500 (the crash is induced in a view's helper).
    from scheduler.api import jobs

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("induced")

    with w.monkeypatch.context() as patch:
        patch.setattr(jobs.JobViewSet, "get_object", crash)
        w.bob.client.raise_request_exception = False
        w.bob.get(f"/api/v1/jobs/{w.world.jobs['queued'].pk}/")
        w.bob.client.raise_request_exception = True


def job_errors(w: Walk) -> None:
    from scheduler.models import PriorityClass, TeamQuota
    from scheduler.states import QUEUED, RUNNING, SUCCEEDED

    jobs = w.world.jobs
    w.bob.get(f"/api/v1/jobs/{jobs[QUEUED].pk}/logs/")  # no_log
    w.bob.get(f"/api/v1/jobs/{jobs[RUNNING].pk}/logs/")  # log_unavailable: no cluster here
    w.bob.post(f"/api/v1/jobs/{jobs[SUCCEEDED].pk}/cancel/")
    w.bob.post("/api/v1/jobs/", _job_request(preemptible=False))  # preemptible_required
    PriorityClass.objects.get_or_create(name="urgent", defaults={"value": 900})
    w.bob.post("/api/v1/jobs/", _job_request(priority_class="urgent"))  # priority_not_allowed
    w.bob.post("/api/v1/jobs/", _job_request(team="nlp"))  # not a member
    w.lead.post("/api/v1/jobs/", _job_request(preemptible=False, gpus=4))  # over_guarantee
    team = jobs[QUEUED].team
    TeamQuota.objects.update_or_create(team=team, defaults={"user_gpu_cap": 1})
    w.bob.post("/api/v1/jobs/", _job_request(gpus=2))  # over_limit
    TeamQuota.objects.filter(team__slug="vision").update(user_gpu_cap=None)
    w.bob.post("/api/v1/priority-classes/", {"name": "mine", "value": 1})  # permission_denied


def booking_errors(w: Walk) -> None:
    from scheduler.models import TeamPolicy

    now = timezone.now()
    booking = w.world.booking
    clash = {
        "team": "vision", "node": "tesla-01", "gpus": [2, 3],
        "start": (now + timedelta(minutes=10)).isoformat(),
        "end": (now + timedelta(minutes=70)).isoformat(),
    }  # fmt: skip
    w.bob.post("/api/v1/reservations/", clash)  # conflict: GPUs taken
    w.bob.post("/api/v1/reservations/borrow/", {"team": "vision", "gpus": 8, "hours": 1})
    TeamPolicy.objects.filter(team__slug="vision").update(max_booking_hours=1)
    w.bob.post(
        "/api/v1/reservations/",
        {**clash, "gpus": [0], "start": (now + timedelta(days=2)).isoformat(),
         "end": (now + timedelta(days=2, hours=5)).isoformat()},
    )  # policy_violation  # fmt: skip
    TeamPolicy.objects.filter(team__slug="vision").update(max_booking_hours=None)
    w.bob.post(f"/api/v1/reservations/{booking.pk}/", {}, content_type="application/json")
    w.bob.patch(f"/api/v1/reservations/{booking.pk}/", {})  # "Give a new start or end."


def session_errors(w: Walk) -> None:
    from scheduler.models import Reservation
    from scheduler.services import reservations

    now = timezone.now()
    booking = w.world.booking
    session = w.world.session
    bob = w.world.bob
    node = booking.node
    w.bob.post("/api/v1/sessions/", {"reservation": booking.pk, "image": "lab-ws"})
    w.bob.post("/api/v1/sessions/", {"reservation": booking.pk, "image": "nosuch"})
    later = reservations.reserve_gpus(
        bob, team=booking.team, node=node, gpu_indices=[0, 1], start=now + timedelta(days=1),
        end=now + timedelta(days=1, hours=1), purpose="", now=now,
    )  # fmt: skip
    w.bob.post("/api/v1/sessions/", {"reservation": later.pk, "image": "lab-ws"})  # not_now
    # gpus_busy: a booking now of GPUs a running job holds (the world's jobs hold GPU 0).
    Reservation.objects.filter(pk=later.pk).update(
        start=now - timedelta(minutes=1), end=now + timedelta(hours=1)
    )
    w.bob.post("/api/v1/sessions/", {"reservation": later.pk, "image": "lab-ws"})
    # booked: alice books the session's GPUs from its end; bob extends past it.
    reservations.reserve_gpus(
        w.world.alice, team=booking.team, node=node, gpu_indices=[2, 3], start=booking.end,
        end=booking.end + timedelta(hours=1), purpose="", now=now,
    )  # fmt: skip
    w.bob.post(f"/api/v1/sessions/{session.pk}/extend/", {"minutes": 60})
    # booked: a session on demand, placed on GPU 1; alice books GPU 1 from in 90 minutes;
    # bob extends his session past that.
    ondemand = w.bob.post(
        "/api/v1/sessions/", {"team": "vision", "image": "lab-ws", "gpus": 1, "hours": 1}
    ).json()
    from scheduler.models import Job
    from scheduler.services.jobs import transition_job

    job = Job.objects.get(session__pk=ondemand["id"])
    transition_job(
        job, "admitted", now=now, node=node, gpu_indices=[1], admitted_at=now,
        eta=None,
    )  # fmt: skip
    reservations.reserve_gpus(
        w.world.alice, team=booking.team, node=node, gpu_indices=[1],
        start=now + timedelta(minutes=90), end=now + timedelta(minutes=150), purpose="", now=now,
    )  # fmt: skip
    w.bob.post(f"/api/v1/sessions/{ondemand['id']}/extend/", {"minutes": 60})
    w.settings.KARIMASU_MAX_SESSION_HOURS = 1
    w.bob.post(f"/api/v1/sessions/{session.pk}/extend/", {"minutes": 240})  # over_limit
    w.bob.post(f"/api/v1/sessions/{session.pk}/stop/")
    w.bob.post(f"/api/v1/sessions/{session.pk}/extend/", {"minutes": 10})  # stopped


def query_errors(w: Walk) -> None:
    from querygate.models import Query, Warehouse

    queries = "/api/v1/queries/"
    w.bob.post(queries, {"warehouse": "demo", "sql": "SELECT n_name\nFROM nation\nWHERE = = 1"})
    w.bob.post(queries, {"warehouse": "demo", "sql": "SELECT n_nam FROM nation"})
    w.bob.post(queries, {"warehouse": "demo", "sql": "SELECT * FROM read_csv('/etc/passwd')"})
    w.admin.post(
        queries,
        {"warehouse": "demo", "sql": "SELECT * FROM read_csv('/etc/passwd')",
         "override_justification": "trust me"},
    )  # not_overridable  # fmt: skip
    demo = Warehouse.objects.get(name="demo")
    Warehouse.objects.filter(pk=demo.pk).update(policy={"warn_bytes_scanned": 1})
    w.bob.post(queries, {"warehouse": "demo", "sql": "SELECT n_name FROM nation"})
    Warehouse.objects.filter(pk=demo.pk).update(policy={"max_bytes_scanned": 100})
    w.bob.post(queries, {"warehouse": "demo", "sql": "SELECT n_name FROM nation"})
    Warehouse.objects.filter(pk=demo.pk).update(policy={}, daily_bytes_per_user=1)
    w.bob.post(queries, {"warehouse": "demo", "sql": "SELECT n_name FROM nation"})
    Warehouse.objects.filter(pk=demo.pk).update(daily_bytes_per_user=None)
    # Stored policies an admin broke by hand (the model's validation bypassed): a sandbox
    # limit that is not a positive number (invalid_policy), a bytes limit that is text
    # (the analyzer fails on it: analysis_failed).
    Warehouse.objects.filter(pk=demo.pk).update(policy={"sandbox_threads": 0})
    w.bob.post(queries, {"warehouse": "demo", "sql": "SELECT n_name FROM nation"})
    Warehouse.objects.filter(pk=demo.pk).update(policy={"max_bytes_scanned": "lots"})
    w.bob.post(queries, {"warehouse": "demo", "sql": "SELECT n_name FROM nation"})
    Warehouse.objects.filter(pk=demo.pk).update(policy={})
    Warehouse.objects.create(name="closed", engine="duckdb", connection=demo.connection)
    w.bob.post(queries, {"warehouse": "closed", "sql": "SELECT 1"})  # warehouse_denied
    done = w.world.query
    w.bob.post(f"{queries}{done.pk}/cancel/")  # not_running
    rejected = Query.objects.filter(user=w.world.bob, status="rejected").first()
    if rejected is not None:
        w.bob.get(f"{queries}{rejected.pk}/results/")  # no_result
    queued = Query.objects.create(
        user=w.world.bob, team=done.team, warehouse=demo, sql="SELECT 1", status="queued",
        decision="allow", created_at=timezone.now(),
    )  # fmt: skip
    w.bob.get(f"{queries}{queued.pk}/results/")  # not_finished
    Query.objects.filter(pk=done.pk).update(result_file="")
    w.bob.get(f"{queries}{done.pk}/results/", {"download": "parquet"})  # no_result_file
    Query.objects.filter(pk=done.pk).update(result_expired_at=timezone.now())
    w.bob.get(f"{queries}{done.pk}/results/", {"download": "parquet"})  # results_expired


def pipeline_errors(w: Walk) -> None:
    pipelines = "/api/v1/pipelines/"
    w.bob.post(pipelines, {"name": "p", "team": "vision", "definition": "not an object"})
    w.bob.post(
        pipelines,
        {"name": "p2", "team": "vision",
         "definition": {"steps": [{"name": "A b", "kind": "container", "image": "x"}]}},
    )  # fmt: skip
    w.bob.post(
        pipelines,
        {"name": "p3", "team": "vision",
         "definition": {"steps": [{"name": "a", "kind": "query", "warehouse": "demo",
                                   "sql": "SELECT 1", "inputs": ["nosuch"]}]}},
    )  # fmt: skip
    w.bob.post(f"/api/v1/pipeline-runs/{w.world.run.pk}/cancel/")  # a finished run
    w.bob.post(f"/api/v1/pipeline-runs/{w.world.run.pk}/resume/")


TRIGGERS = [
    framework_errors, too_large, bad_request, throttled, server_error, job_errors,
    booking_errors, session_errors, query_errors, pipeline_errors,
]  # fmt: skip


def _texts(value: Any) -> list[str]:
    """The human texts in an error's details: strings, less machine values (a lower-case
    identifier such as a severity ``error``, a kind ``job``, a rule ``parse-error``)."""
    if isinstance(value, str):
        return [] if re.fullmatch(r"[a-z0-9_.:/-]*", value) else [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _walk(walk: Walk) -> tuple[Recorder, list[str]]:
    crashed = []
    for trigger in TRIGGERS:
        try:
            trigger(walk)
        except Exception as exc:  # a broken trigger is reported by name
            crashed.append(f"trigger {trigger.__name__} crashed: {type(exc).__name__}: {exc}")
    return walk.bob.recorder, crashed


@pytest.fixture(params=["header", "setting"])
def walk(request, world, japanese_bob, alice, settings, monkeypatch) -> Walk:
    admin = make_persona("root", staff=True)
    header = request.param == "header"
    for persona in (japanese_bob, alice):
        persona.user.language = "en" if header else "ja"
        persona.user.save()
    admin.user.language = "en" if header else "ja"
    admin.user.save()
    headers = {"accept-language": "ja"} if header else {}
    recorder = Recorder()
    world.bob = japanese_bob.user
    world.alice = alice.user
    return Walk(
        bob=Api(recorder, japanese_bob.token, headers),
        lead=Api(recorder, alice.token, headers),
        admin=Api(recorder, admin.token, headers),
        # Nobody is signed in: only the header can ask for Japanese.
        anonymous=Api(recorder, None, {"accept-language": "ja"}),
        world=world,
        settings=settings,
        monkeypatch=monkeypatch,
    )


PROXY = "scheduler/session_proxy.py"


def _coverage(codes: dict[str, set[str]], seen: Recorder, unreachable: dict[str, str]) -> list[str]:
    return [
        f"{code} → never triggered (from {', '.join(sorted(files))})"
        for code, files in sorted(codes.items())
        if code not in unreachable and code not in seen.seen
    ]


def _problems(recorder: Recorder) -> list[str]:
    findings: list[str] = []
    for code, answers in sorted(recorder.seen.items()):
        reported: set[str] = set()
        for what, error in answers:
            for text in [error["message"], *_texts(error.get("details"))]:
                for problem in english.problems(text):
                    line = f"{code} → {problem}  [{what}: {text[:160]!r}]"
                    if (code, text) not in reported:  # type: ignore[comparison-overlap]
                        reported.add((code, text))  # type: ignore[arg-type]
                        findings.append(line)
    return findings


def test_every_api_error_code_speaks_japanese_to_bob(walk):
    recorder, crashed = _walk(walk)
    # The session proxy's own codes are walked below (it is an ASGI app in front of Django).
    codes = {code: files for code, files in scan().items() if files != {PROXY}}
    findings = crashed + _coverage(codes, recorder, UNREACHABLE) + _problems(recorder)
    assert not findings, f"{len(findings)} problems:\n" + "\n".join(findings)


def test_unreachable_codes_are_real_codes():
    """The allow-list only names codes the source still has."""
    assert set(UNREACHABLE) <= set(scan()), set(UNREACHABLE) - set(scan())


def test_the_scan_finds_codes_of_every_kind():
    codes = scan()
    assert "permission_denied" in codes  # a class attribute
    assert "not_now" in codes  # a keyword argument
    assert "throttled" in codes  # DEFAULT_CODES
    assert "malformed_json" in codes  # a DRF exception's default_code


# -- the session proxy (/s/<id>/...), served over ASGI as in production -----------------------

PROXY_UNREACHABLE = {
    "disconnected": "the client went away in the middle of its request: nobody reads the answer",
}


@dataclass
class Answer:
    """An httpx response, or a refused WebSocket handshake's, shaped for Recorder."""

    response: Any

    @property
    def status_code(self) -> int:
        return int(self.response.status_code)

    def get(self, name: str, default: str = "") -> str:
        return str(self.response.headers.get(name, default))

    def json(self) -> Any:
        body = getattr(self.response, "body", None)
        return json.loads(body) if body is not None else self.response.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["header", "setting"])
def test_every_session_proxy_error_speaks_japanese_to_bob(
    how, world, japanese_bob, alice, settings, tmp_path
):
    import httpx
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from scheduler.models import Job
    from scheduler.services import sessions
    from tests.scheduler.sessions_upstream import serve_portal, write_kubeconfig

    for persona in (japanese_bob, alice):  # alice asks for bob's session once
        persona.user.language = "en" if how == "header" else "ja"
        persona.user.save()
    headers = {"accept-language": "ja"} if how == "header" else {}
    # Nobody is signed in (no credentials, a dead token): only the header can ask.
    anonymous = {"accept-language": "ja"}
    bearer = {**headers, "authorization": f"Bearer {japanese_bob.token}"}
    recorder = Recorder()
    session = world.session
    from portal.asgi import application

    # The proxy is a process-wide singleton whose pooled HTTP client belongs to the event
    # loop of the server that made it; each serve_portal runs a loop of its own.
    application._client = None
    with serve_portal() as portal:

        def get(path: str, **kwargs: Any) -> None:
            response = httpx.get(portal + path, timeout=15, **kwargs)
            recorder.record(f"GET {path}", Answer(response))

        get("/s/abc/", headers=bearer)  # not_found: not a session's address
        get("/s/999999/", headers=bearer)  # permission_denied (unknown ids are not told)
        get(f"/s/{session.pk}/", headers=anonymous)  # not_authenticated
        get(f"/s/{session.pk}/", headers={**anonymous, "authorization": "Bearer nope"})
        alice_bearer = {**headers, "authorization": f"Bearer {alice.token}"}
        get(f"/s/{session.pk}/", headers=alice_bearer)  # permission_denied
        settings.KUBECONFIG = ""
        get(f"/s/{session.pk}/", headers=bearer)  # cluster_unavailable: none configured
        settings.KUBECONFIG = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9", "t")
        get(f"/s/{session.pk}/", headers=bearer)  # upstream_error: nothing listens there
        big = httpx.post(
            f"{portal}/s/{session.pk}/upload", headers=bearer, timeout=30,
            content=b"x" * (64 * 1024 * 1024 + 1),
        )  # fmt: skip
        recorder.record("POST a big body", Answer(big))
        try:  # bad_origin: a WebSocket opened by another site with bob's cookie
            from django.test import Client

            client = Client()
            client.force_login(japanese_bob.user)
            cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
            cookie = f"{settings.SESSION_COOKIE_NAME}={cookie}"
            if how == "header":
                # A browser signed in with a session: the saved language comes before
                # Accept-Language (as on pages); the switcher's choice (a cookie) first.
                cookie += f"; {settings.LANGUAGE_COOKIE_NAME}=ja"
            with connect(
                portal.replace("http", "ws") + f"/s/{session.pk}/ws",
                additional_headers={
                    **headers, "cookie": cookie,
                    "origin": "https://evil.example",
                },
                open_timeout=15,
            ):  # fmt: skip
                pass
        except InvalidStatus as refused:
            recorder.record("WebSocket from another origin", Answer(refused.response))
        Job.objects.filter(pk=session.job_id).update(status="queued")
        get(f"/s/{session.pk}/", headers=bearer)  # not_ready
        Job.objects.filter(pk=session.job_id).update(status="admitted")
        sessions.stop_session(japanese_bob.user, session, now=timezone.now())
        Job.objects.filter(pk=session.job_id).update(status="cancelled")
        get(f"/s/{session.pk}/", headers=bearer)  # session_stopped
    codes = {code: files for code, files in scan().items() if PROXY in files}
    findings = _coverage(codes, recorder, PROXY_UNREACHABLE) + _problems(recorder)
    assert not findings, f"{len(findings)} problems:\n" + "\n".join(findings)
