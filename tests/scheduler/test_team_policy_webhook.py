"""Issue #12 item 2: a team's webhook URL is a credential, and its target must be public.

Before: any signed-in user read every team's Slack webhook URL through the policy API, and a
lead could point it at 127.0.0.1 or 169.254.169.254 for the worker to post to (SSRF).
"""

from __future__ import annotations

import socket

import pytest

from scheduler.models import TeamPolicy
from scheduler.services import webhooks
from tests.conftest import assert_error
from tests.scheduler.webhook import webhook_receiver

URL = "/api/v1/teams/vision/policy/"
HOOK = "https://hooks.example.com/services/T000/B000/XXXXSECRETXXXX"


def addresses(*ips: str):
    """A stand-in resolver answering these addresses for any host."""

    def resolve(host: str, port: int):
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in ips
        ]

    return resolve


@pytest.fixture
def public_dns(monkeypatch):
    monkeypatch.setattr(webhooks, "getaddrinfo", addresses("93.184.216.34"))


@pytest.fixture
def with_hook(vision):
    TeamPolicy.objects.update_or_create(team=vision, defaults={"slack_webhook_url": HOOK})


def test_outsiders_cannot_read_a_teams_policy(with_hook, charlie, anonymous):
    assert_error(charlie.client().get(URL), 403, "permission_denied")
    assert_error(anonymous.get(URL), 401)


def test_members_see_the_policy_with_the_webhook_masked(with_hook, bob):
    body = bob.client().get(URL).json()
    assert body["max_booking_hours"] == 72
    assert "XXXXSECRETXXXX" not in str(body)
    assert body["slack_webhook_url"] == "https://hooks.example.com/…"


def test_leads_and_admins_see_the_webhook(with_hook, alice, admin):
    assert alice.client().get(URL).json()["slack_webhook_url"] == HOOK
    assert admin.client().get(URL).json()["slack_webhook_url"] == HOOK


def test_lead_sets_a_public_https_webhook(alice, public_dns):
    response = alice.client().patch(URL, {"slack_webhook_url": HOOK}, format="json")
    assert response.status_code == 200, response.content
    assert TeamPolicy.objects.get(team__slug="vision").slack_webhook_url == HOOK


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        pytest.param("http://hooks.example.com/x", ["93.184.216.34"], id="plain-http"),
        pytest.param("https://127.0.0.1/hook", ["127.0.0.1"], id="loopback"),
        pytest.param(
            "https://169.254.169.254/latest/meta-data/", ["169.254.169.254"], id="metadata"
        ),
        pytest.param("https://[::1]/hook", ["::1"], id="ipv6-loopback"),
        pytest.param("https://10.0.0.5/hook", ["10.0.0.5"], id="private"),
        pytest.param("https://0.0.0.0/hook", ["0.0.0.0"], id="unspecified"),  # noqa: S104
        pytest.param("https://[::ffff:127.0.0.1]/h", ["::ffff:127.0.0.1"], id="v4-mapped-loopback"),
        # A name with one public and one internal address: every address must be public.
        pytest.param("https://mixed.example.com/h", ["93.184.216.34", "192.168.1.1"], id="mixed"),
        pytest.param("ftp://hooks.example.com/x", ["93.184.216.34"], id="ftp"),
        pytest.param("https://user:pw@hooks.example.com/x", ["93.184.216.34"], id="credentials"),
    ],
)
def test_webhook_to_an_internal_or_non_https_target_is_refused(alice, monkeypatch, url, resolved):
    monkeypatch.setattr(webhooks, "getaddrinfo", addresses(*resolved))
    response = alice.client().patch(URL, {"slack_webhook_url": url}, format="json")
    error = assert_error(response, 400, "invalid")
    assert "slack_webhook_url" in error["details"]
    assert TeamPolicy.objects.get(team__slug="vision").slack_webhook_url == ""


def test_webhook_whose_host_does_not_resolve_is_refused(alice, monkeypatch):
    def fail(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(webhooks, "getaddrinfo", fail)
    response = alice.client().patch(URL, {"slack_webhook_url": HOOK}, format="json")
    assert "slack_webhook_url" in assert_error(response, 400, "invalid")["details"]


def test_admin_allowed_host_may_be_internal(alice, settings, monkeypatch):
    monkeypatch.setattr(webhooks, "getaddrinfo", addresses("10.1.2.3"))
    settings.KARIMASU_WEBHOOK_ALLOWED_HOSTS = ["chat.internal"]
    url = "http://chat.internal/hook"
    assert alice.client().patch(URL, {"slack_webhook_url": url}, format="json").status_code == 200


def test_send_time_check_defeats_dns_rebinding(vision, monkeypatch):
    """The name resolved to a public address when saved; now it answers 127.0.0.1."""
    received: list = []
    with webhook_receiver(received) as local_url:
        port = local_url.split(":")[2].split("/")[0]
        monkeypatch.setattr(webhooks, "getaddrinfo", addresses("127.0.0.1"))
        assert webhooks.post_webhook(f"https://rebind.example.com:{port}/hook", "hi") is False
        assert received == []


def test_send_connects_to_the_checked_address(vision, monkeypatch, settings):
    """An allowed host is reached at the address that was checked, not resolved again."""
    received: list = []
    calls: list = []
    settings.KARIMASU_WEBHOOK_ALLOWED_HOSTS = ["chat.internal"]

    def resolve(host, port):
        calls.append(host)
        return addresses("127.0.0.1")(host, port)

    monkeypatch.setattr(webhooks, "getaddrinfo", resolve)
    with webhook_receiver(received) as local_url:
        port = local_url.split(":")[2].split("/")[0]
        assert webhooks.post_webhook(f"http://chat.internal:{port}/hook", "hello") is True
    assert received == [{"text": "hello"}] and calls == ["chat.internal"]


def test_webhook_redirects_are_not_followed(vision, monkeypatch, settings):
    settings.KARIMASU_WEBHOOK_ALLOWED_HOSTS = ["chat.internal"]
    monkeypatch.setattr(webhooks, "getaddrinfo", addresses("127.0.0.1"))
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(307)
            self.send_header("Location", "http://169.254.169.254/latest/")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://chat.internal:{server.server_address[1]}/hook"
        assert webhooks.post_webhook(url, "hello") is False
    finally:
        server.shutdown()
        server.server_close()
