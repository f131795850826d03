"""The session proxy (``/s/<id>/``, portal/asgi.py) served by uvicorn against a real
upstream standing in for the Kubernetes API's pod proxy: HTTP and WebSocket round trips,
who may open a session (its owner only: 403 for anyone else), the WebSocket Origin check,
and the user's cookies and Authorization never reaching the workspace."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from scheduler import states
from scheduler.models import Job, Session, WorkspaceImage
from scheduler.services import sessions
from tests.scheduler.sessions_upstream import Upstream, serve, serve_portal, write_kubeconfig

pytestmark = pytest.mark.django_db(transaction=True)

CLUSTER_TOKEN = "cluster-token-123"


@pytest.fixture
def upstream(tmp_path, settings):
    app = Upstream()
    with serve(app) as url:
        app.url = url
        settings.KUBECONFIG = write_kubeconfig(tmp_path / "kubeconfig", url, CLUSTER_TOKEN)
        yield app


@pytest.fixture
def portal(upstream):
    with serve_portal() as url:
        yield url


@pytest.fixture
def session(bob, nodes, unlimited, django_capture_on_commit_callbacks) -> Session:
    from scheduler.models import Reservation
    from scheduler.services.availability import borrow_now

    workspace = WorkspaceImage.objects.create(name="stand-in", image="ws:1", port=8888)
    booking = borrow_now(
        bob.user,
        team=bob.user.memberships.get().team,
        gpus=1,
        model=None,
        hours=1,
        purpose="",
        shared_with_team=False,
        now=timezone.now(),
    )
    assert isinstance(booking, Reservation)
    with django_capture_on_commit_callbacks(execute=False):
        return sessions.start_session(
            bob.user, reservation=booking, workspace=workspace, now=timezone.now()
        )


def cookie_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def get(portal, path, **kwargs) -> httpx.Response:
    return httpx.get(portal + path, timeout=10, **kwargs)


def test_the_owner_reaches_the_workspace_and_their_credentials_stay_behind(
    portal, upstream, session, bob
) -> None:
    cookies = {"sessionid": cookie_of(bob.user), "csrftoken": "abc"}
    response = get(
        portal, f"/s/{session.pk}/lab/tree?x=1", cookies=cookies, headers={"X-Mine": "yes"}
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["rest"] == f"s/{session.pk}/lab/tree"
    assert seen["query"] == "x=1"
    assert seen["headers"]["x-mine"] == "yes"
    assert "cookie" not in seen["headers"]
    assert seen["headers"]["authorization"] == f"Bearer {CLUSTER_TOKEN}"
    lookup = upstream.requests[0]
    assert lookup["query"].startswith("labelSelector=")
    assert f"karimasu.io/job-id={session.job_id}" in json.loads(
        json.dumps(httpx.QueryParams(lookup["query"])["labelSelector"])
    )

    # a Bearer token works for clients; the token itself is not forwarded
    response = get(portal, f"/s/{session.pk}/api", headers={"Authorization": f"Bearer {bob.token}"})
    assert response.status_code == 200
    assert response.json()["headers"]["authorization"] == f"Bearer {CLUSTER_TOKEN}"

    # bodies are forwarded
    response = httpx.post(
        f"{portal}/s/{session.pk}/api/contents", content=b"hello", cookies=cookies, timeout=10
    )
    assert response.json()["body"] == "hello"


def test_a_page_inside_the_session_loads(portal, session, bob) -> None:
    response = get(portal, f"/s/{session.pk}/page", cookies={"sessionid": cookie_of(bob.user)})
    assert response.status_code == 200
    assert "Stand-in workspace" in response.text
    # without the trailing slash: redirected to the session's root
    response = get(portal, f"/s/{session.pk}", cookies={"sessionid": cookie_of(bob.user)})
    assert response.status_code == 302
    assert response.headers["location"] == f"/s/{session.pk}/"


@pytest.mark.parametrize("who", ["alice", "charlie", "admin"])
def test_anyone_but_the_owner_gets_403(portal, upstream, session, alice, charlie, admin, who):
    persona = {"alice": alice, "charlie": charlie, "admin": admin}[who]
    for auth in (
        {"cookies": {"sessionid": cookie_of(persona.user)}},
        {"headers": {"Authorization": f"Bearer {persona.token}"}},
    ):
        response = get(portal, f"/s/{session.pk}/lab", **auth)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "permission_denied"
    # a session that does not exist answers the same: nothing leaks
    response = get(portal, "/s/987654/lab", cookies={"sessionid": cookie_of(persona.user)})
    assert response.status_code == 403
    assert upstream.requests == []


def test_signed_out_callers_are_401_or_sent_to_sign_in(portal, session) -> None:
    response = get(portal, f"/s/{session.pk}/lab")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    response = get(portal, f"/s/{session.pk}/lab", headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["location"].startswith("/accounts/login/?next=")
    response = get(portal, f"/s/{session.pk}/lab", headers={"Authorization": "Bearer kms_nope"})
    assert response.status_code == 401
    assert get(portal, "/s/abc/").status_code == 404
    assert get(portal, "/healthz").status_code == 200  # everything else is Django's


def test_a_workspace_cannot_set_the_portals_cookies(portal, session, bob) -> None:
    response = get(portal, f"/s/{session.pk}/cookies", cookies={"sessionid": cookie_of(bob.user)})
    assert response.status_code == 200
    set_cookies = response.headers.get_list("set-cookie")
    assert set_cookies == [f"_xsrf=ok; Path=/s/{session.pk}/"]


def test_a_stopped_session_is_409_and_a_starting_one_503(portal, upstream, session, bob):
    cookies = {"sessionid": cookie_of(bob.user)}
    upstream.pod_running = False
    response = get(portal, f"/s/{session.pk}/lab", cookies=cookies)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    sessions.stop_session(bob.user, session, now=timezone.now())
    assert Job.objects.get(pk=session.job_id).status == states.CANCELLED
    response = get(portal, f"/s/{session.pk}/lab", cookies=cookies)
    assert response.status_code == 409


@pytest.fixture
def on_demand(bob, nodes, django_capture_on_commit_callbacks) -> Session:
    """A session without a booking, queued like a job."""
    from scheduler.models import PriorityClass

    # transactional tests flush the migrations' rows: the default class the submission needs
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    workspace = WorkspaceImage.objects.create(name="stand-in", image="ws:1", port=8888)
    with django_capture_on_commit_callbacks(execute=False):
        return sessions.start_ondemand_session(
            bob.user, team="vision", workspace=workspace, gpus=1, now=timezone.now()
        )


def test_an_on_demand_session_is_its_owners_alone_and_503_while_queued(
    portal, upstream, on_demand, bob, alice, charlie, admin
) -> None:
    for persona in (alice, charlie, admin):
        for auth in (
            {"cookies": {"sessionid": cookie_of(persona.user)}},
            {"headers": {"Authorization": f"Bearer {persona.token}"}},
        ):
            response = get(portal, f"/s/{on_demand.pk}/lab", **auth)
            assert response.status_code == 403, response.text
    response = get(portal, f"/s/{on_demand.pk}/lab", cookies={"sessionid": cookie_of(bob.user)})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    assert response.headers["retry-after"] == "2"
    assert upstream.requests == []  # nothing reached the cluster for them
    # placed on a node and running: the owner reaches the workspace
    Job.objects.filter(pk=on_demand.job_id).update(
        status=states.RUNNING, node=nodes_first(), gpu_indices=[0], started_at=timezone.now()
    )
    response = get(portal, f"/s/{on_demand.pk}/page", cookies={"sessionid": cookie_of(bob.user)})
    assert response.status_code == 200, response.text
    assert upstream.requests


def nodes_first():
    from scheduler.models import Node

    return Node.objects.order_by("name").first()


def _ws(portal: str, path: str, **kwargs):
    return connect(portal.replace("http://", "ws://") + path, open_timeout=10, **kwargs)


def test_a_websocket_round_trip(portal, upstream, session, bob) -> None:
    headers = {"Cookie": f"sessionid={cookie_of(bob.user)}"}

    async def run() -> tuple[str, bytes, int | None]:
        async with _ws(
            portal,
            f"/s/{session.pk}/ws/echo",
            origin=portal,
            additional_headers=headers,
            subprotocols=["v1.kernel.websocket.jupyter.org"],
        ) as ws:
            assert ws.subprotocol == "v1.kernel.websocket.jupyter.org"
            await ws.send("ping")
            text = await ws.recv()
            await ws.send(b"\x00\x01")
            data = await ws.recv()
            await ws.send("close-me")
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
            return text, data, ws.close_code

    text, data, code = asyncio.run(run())
    assert (text, data) == ("echo:ping", b"echo:\x00\x01")
    assert code == 4321  # the workspace's close reaches the browser
    [upgrade] = [r for r in upstream.requests if r["type"] == "websocket"]
    assert "cookie" not in upgrade["headers"]
    assert upgrade["headers"]["authorization"] == f"Bearer {CLUSTER_TOKEN}"


@pytest.mark.parametrize("origin", ["http://evil.example", None], ids=["another-site", "no-origin"])
def test_a_websocket_from_another_origin_is_refused(portal, upstream, session, bob, origin):
    headers = {"Cookie": f"sessionid={cookie_of(bob.user)}"}

    async def run() -> None:
        async with _ws(
            portal, f"/s/{session.pk}/ws/echo", origin=origin, additional_headers=headers
        ):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run())
    assert refused.value.response.status_code == 403
    assert not [r for r in upstream.requests if r["type"] == "websocket"]


def test_a_websocket_of_a_non_owner_is_refused(portal, upstream, session, alice) -> None:
    headers = {"Cookie": f"sessionid={cookie_of(alice.user)}"}

    async def run() -> None:
        async with _ws(
            portal, f"/s/{session.pk}/ws/echo", origin=portal, additional_headers=headers
        ):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run())
    assert refused.value.response.status_code == 403
    assert upstream.requests == []


def test_a_browser_meets_a_page_not_json_when_its_session_cannot_be_opened(
    portal, upstream, session, bob
):
    """A stopped (or starting) session opened in a browser tab: a page in the user's
    language that says why and links back to the session's page; API clients keep the JSON
    (above). The page escapes what it shows and loads no script."""
    bob.user.language = "ja"
    bob.user.save()
    cookies = {"sessionid": cookie_of(bob.user)}
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    upstream.pod_running = False
    starting = get(portal, f"/s/{session.pk}/lab", cookies=cookies, headers=html)
    assert starting.status_code == 503 and starting.headers["retry-after"] == "2"
    assert starting.headers["content-type"].startswith("text/html")
    assert "ワークスペースはまだ起動していません" in starting.text
    sessions.stop_session(bob.user, session, now=timezone.now())
    stopped = get(portal, f"/s/{session.pk}/lab", cookies=cookies, headers=html)
    assert stopped.status_code == 409
    assert stopped.headers["content-type"].startswith("text/html")
    assert f'href="/sessions/{session.pk}/"' in stopped.text
    assert "セッションは停止しています" in stopped.text or "停止" in stopped.text
    assert "<script" not in stopped.text
    assert get(portal, f"/s/{session.pk}/lab", cookies=cookies).json()["error"]["code"] == (
        "session_stopped"
    )
