"""Who may do what in the scheduler, as one persona x object x action table, checked
through the API, the pages and the services (``scheduler.services.access`` is the rules'
one home).

bob (a member of vision) owns the job and holds the booking; alice leads vision; dave is
another member of vision; charlie leads nlp; admin is staff.
"""

from __future__ import annotations

import pytest
from django.test import Client

from portal.accounts.models import Membership, Team
from portal.errors import NotFoundError, NotPermitted
from scheduler.models import TeamPolicy, TeamQuota
from scheduler.services import access
from tests.conftest import make_persona
from tests.scheduler.test_jobs_api import submit
from tests.scheduler.test_reservations import book

pytestmark = pytest.mark.django_db

WEBHOOK = "https://hooks.slack.com/services/T000/B000/secretsecret"

#: action -> persona -> the HTTP status the API (or page) answers.
TABLE: dict[str, dict[str, int]] = {
    "job.view": {"bob": 200, "alice": 200, "dave": 200, "charlie": 404, "admin": 200},
    "job.page": {"bob": 200, "alice": 200, "dave": 200, "charlie": 404, "admin": 200},
    "job.logs.archive": {"bob": 409, "alice": 409, "dave": 409, "charlie": 404, "admin": 409},
    "job.cancel": {"bob": 200, "alice": 200, "dave": 403, "charlie": 404, "admin": 200},
    "booking.view": {"bob": 200, "alice": 200, "dave": 200, "charlie": 200, "admin": 200},
    "booking.end": {"bob": 204, "alice": 204, "dave": 403, "charlie": 403, "admin": 204},
    "policy.view": {"bob": 200, "alice": 200, "dave": 200, "charlie": 403, "admin": 200},
    "policy.change": {"bob": 403, "alice": 200, "dave": 403, "charlie": 403, "admin": 200},
    "quota.view": {"bob": 200, "alice": 200, "dave": 200, "charlie": 403, "admin": 200},
    "quota.change": {"bob": 403, "alice": 403, "dave": 403, "charlie": 403, "admin": 200},
    "team.usage": {"bob": 200, "alice": 200, "dave": 200, "charlie": 403, "admin": 200},
    "team.page": {"bob": 200, "alice": 200, "dave": 200, "charlie": 404, "admin": 200},
    # Every team's waste side by side: leads of any team (charlie leads nlp) and admins.
    "usage.waste": {"bob": 403, "alice": 200, "dave": 403, "charlie": 200, "admin": 200},
    "job.efficiency": {"bob": 200, "alice": 200, "dave": 200, "charlie": 404, "admin": 200},
}
#: Who sees the team's webhook URL unmasked.
SEES_WEBHOOK = {"alice", "admin"}
PERSONAS = ["bob", "alice", "dave", "charlie", "admin"]


@pytest.fixture
def people(alice, bob, charlie, admin, vision):
    dave = make_persona("dave")
    Membership.objects.create(team=vision, user=dave.user, role=Membership.Role.MEMBER)
    return {"alice": alice, "bob": bob, "charlie": charlie, "admin": admin, "dave": dave}


@pytest.fixture
def things(people, nodes, unlimited, vision):
    job = submit(people["bob"]).json()["id"]
    booking = book(people["bob"], start=1, end=3).json()["id"]
    TeamPolicy.objects.filter(team=vision).update(slack_webhook_url=WEBHOOK)
    return {"job": job, "booking": booking}


def _answers(persona, things, action: str) -> int:
    client, job, booking = persona.client(), things["job"], things["booking"]
    requests = {
        "job.view": lambda: client.get(f"/api/v1/jobs/{job}/"),
        "job.logs.archive": lambda: client.get(f"/api/v1/jobs/{job}/logs/"),
        "job.cancel": lambda: client.post(f"/api/v1/jobs/{job}/cancel/"),
        "booking.view": lambda: client.get(f"/api/v1/reservations/{booking}/"),
        "booking.end": lambda: client.delete(f"/api/v1/reservations/{booking}/"),
        "policy.view": lambda: client.get("/api/v1/teams/vision/policy/"),
        "policy.change": lambda: client.patch(
            "/api/v1/teams/vision/policy/", {"max_gpus_per_user": 3}, format="json"
        ),
        "quota.view": lambda: client.get("/api/v1/teams/vision/quota/"),
        "team.usage": lambda: client.get("/api/v1/teams/vision/usage/"),
        "usage.waste": lambda: client.get("/api/v1/usage/waste/"),
        "job.efficiency": lambda: client.get(f"/api/v1/jobs/{job}/efficiency/"),
        "quota.change": lambda: client.patch(
            "/api/v1/teams/vision/quota/", {"guaranteed_gpus": 2}, format="json"
        ),
    }
    if action in ("job.page", "team.page"):
        page = Client()
        page.force_login(persona.user)
        return page.get(f"/jobs/{job}/" if action == "job.page" else "/teams/vision/").status_code
    return requests[action]().status_code


@pytest.mark.parametrize("action", sorted(TABLE))
@pytest.mark.parametrize("who", PERSONAS)
def test_the_api_and_pages_answer_the_table(people, things, who, action) -> None:
    assert _answers(people[who], things, action) == TABLE[action][who]


@pytest.mark.parametrize("who", PERSONAS)
def test_the_webhook_is_shown_to_leads_and_admins_only(people, things, who) -> None:
    body = people[who].client().get("/api/v1/teams/vision/policy/").json()
    if who == "charlie":
        assert "slack_webhook_url" not in str(body)
    else:
        assert (body["slack_webhook_url"] == WEBHOOK) == (who in SEES_WEBHOOK)


@pytest.mark.parametrize("who", PERSONAS)
def test_the_services_answer_the_same(people, things, who) -> None:
    user = people[who].user
    errors = {200: None, 204: None, 403: NotPermitted, 404: NotFoundError}
    checks = [
        ("job.view", lambda: access.access_job(user, things["job"], "view")),
        ("job.cancel", lambda: access.access_job(user, things["job"], "manage")),
        ("booking.view", lambda: access.access_reservation(user, things["booking"])),
        ("booking.end", lambda: access.access_reservation(user, things["booking"], "manage")),
        ("policy.view", lambda: access.access_team(user, "vision", "view_policy")),
        ("policy.change", lambda: access.access_team(user, "vision", "change_policy")),
        ("quota.change", lambda: access.access_team(user, "vision", "change_quota")),
        ("team.usage", lambda: access.access_team(user, "vision", "view_usage")),
    ]
    vision = Team.objects.get(slug="vision")
    assert access.can_view_team(user, vision) == (TABLE["team.usage"][who] == 200)
    assert access.can_compare_teams(user) == (TABLE["usage.waste"][who] == 200)
    for action, call in checks:
        expected = errors[TABLE[action][who]]
        if expected is None:
            call()
        else:
            with pytest.raises(expected):
                call()


PRIVILEGE = {  # persona -> (priority "high", preemptible false)
    "bob": (403, 403),
    "dave": (403, 403),
    "alice": (201, 201),
    "admin": (201, 201),
    "charlie": (400, 400),  # not vision's: refused before any privilege
}


@pytest.mark.parametrize("who", sorted(PRIVILEGE))
def test_priority_and_preemptibility_are_for_leads_and_admins(people, things, vision, who):
    TeamQuota.objects.update_or_create(team=vision, defaults={"guaranteed_gpus": 4})
    high = submit(people[who], priority_class="high")
    unpreemptible = submit(people[who], preemptible=False)
    assert (high.status_code, unpreemptible.status_code) == PRIVILEGE[who]
    if who in ("bob", "dave"):
        assert high.json()["error"]["code"] == "priority_not_allowed"
        assert unpreemptible.json()["error"]["code"] == "preemptible_required"


def test_unknown_or_malformed_ids_are_not_found(people) -> None:
    for wanted in ("abc", None, 10**12):
        with pytest.raises(NotFoundError):
            access.access_job(people["admin"].user, wanted)
        with pytest.raises(NotFoundError):
            access.access_reservation(people["admin"].user, wanted)
