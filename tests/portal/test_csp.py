"""Issue #12 item 5: a Content-Security-Policy that the pages pass.

Every page is rendered and parsed: the policy forbids inline script, so no page may carry a
`<script>` without `src` (JSON data blocks excepted: they do not run), an `on*=` attribute
or a `javascript:` URL; every script comes from this origin.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.utils import timezone

from scheduler.models import Job

DATA_TYPES = {"application/json", "application/ld+json"}


class InlineScriptFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._inline = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}=javascript:...>")
        if tag == "script":
            if values.get("src"):
                self.scripts.append(values["src"] or "")
            elif (values.get("type") or "").lower() not in DATA_TYPES:
                self._inline = True

    def handle_data(self, data: str) -> None:
        if self._inline and data.strip():
            self.problems.append(f"inline <script>: {data.strip()[:60]!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._inline = False


def check(response) -> InlineScriptFinder:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    finder = InlineScriptFinder()
    finder.feed(response.content.decode())
    assert finder.problems == [], finder.problems
    assert all(src.startswith("/") and not src.startswith("//") for src in finder.scripts)
    return finder


@pytest.fixture
def signed_in(client, alice, vision):
    alice.user.is_staff = True
    alice.user.save()
    client.force_login(alice.user)
    return client


def test_login_page_passes_the_policy(client, db):
    check(client.get("/accounts/login/"))


@pytest.mark.parametrize(
    "url",
    ["/", "/jobs/", "/bookings/", "/sql/", "/accounts/tokens/", "/admin/", "/api/docs/"],
)
def test_pages_pass_the_policy(signed_in, url):
    check(signed_in.get(url))


def test_job_page_passes_the_policy(signed_in, alice, vision):
    job = Job.objects.create(
        name="train",
        owner=alice.user,
        team=vision,
        image="pytorch/pytorch:2.4",
        gpus=1,
        max_runtime_s=3600,
        submitted_at=timezone.now(),
    )
    check(signed_in.get(f"/jobs/{job.pk}/"))


def test_language_switch_is_a_static_script(signed_in):
    finder = check(signed_in.get("/"))
    assert any(src.endswith("karimasu/app.js") for src in finder.scripts)


def test_swagger_ui_start_up_script_is_a_file(signed_in):
    response = signed_in.get("/api/docs/?script=")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")


def test_api_responses_carry_the_policy_too(alice):
    assert "default-src 'self'" in alice.client().get("/api/v1/me/")["Content-Security-Policy"]
