"""Who may do what with a query, as one persona x action table, checked through the API,
the page and the service (``querygate.services.access`` is the rules' one home).

bob (a member of vision) owns the query; alice leads vision; dave is another member of
vision; charlie leads nlp; admin is staff.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from portal.accounts.models import Membership
from portal.errors import NotFoundError, NotPermitted
from querygate.models import Query, QueryStatus
from querygate.services.access import access_query, can_override, can_override_somewhere
from querygate.services.admission import submit_query
from tests.conftest import make_persona
from tests.querygate.test_kill import queued

#: persona -> (view, results, cancel): the HTTP status the API answers.
TABLE = {
    "bob": (200, 200, 200),
    "alice": (200, 200, 403),
    "dave": (404, 404, 404),
    "charlie": (404, 404, 404),
    "admin": (200, 200, 200),
}


@pytest.fixture
def people(alice, bob, charlie, admin, vision):
    dave = make_persona("dave")
    Membership.objects.create(team=vision, user=dave.user, role=Membership.Role.MEMBER)
    return {"alice": alice, "bob": bob, "charlie": charlie, "admin": admin, "dave": dave}


@pytest.mark.parametrize("who", sorted(TABLE))
def test_the_api_answers_the_table(demo, people, who) -> None:
    owner, persona = people["bob"], people[who]
    done = submit_query(owner.user, "demo", "SELECT 1 AS one", now=timezone.now(), team="vision")
    waiting = queued(owner.user, demo, "SELECT 2 AS two")
    Query.objects.filter(pk=waiting.pk).update(team=done.team)
    view, results, cancel = TABLE[who]
    client = persona.client()
    assert client.get(f"/api/v1/queries/{done.pk}/").status_code == view
    assert client.get(f"/api/v1/queries/{done.pk}/results/").status_code == results
    response = client.post(f"/api/v1/queries/{waiting.pk}/cancel/", {}, format="json")
    assert response.status_code == cancel, response.content
    waiting.refresh_from_db()
    stopped = {QueryStatus.CANCELLED, QueryStatus.KILLED}
    assert (waiting.status in stopped) == (cancel == 200)


@pytest.mark.parametrize("who", sorted(TABLE))
def test_the_service_and_the_page_answer_the_same(demo, people, who) -> None:
    owner, persona = people["bob"], people[who]
    done = submit_query(owner.user, "demo", "SELECT 41 + 1 AS x", now=timezone.now())
    view, _results, cancel = TABLE[who]
    errors = {200: None, 403: NotPermitted, 404: NotFoundError}
    for action, expected in (("view", view), ("cancel", cancel)):
        if errors[expected] is None:
            assert access_query(persona.user, done.pk, action).pk == done.pk
        else:
            with pytest.raises(errors[expected]):
                access_query(persona.user, done.pk, action)
    page = Client()
    page.force_login(persona.user)
    html = page.get(f"/sql/?query={done.pk}").content.decode()
    assert ("SELECT 41 + 1 AS x" in html) == (view == 200)


def test_overrides_are_for_the_teams_leads_and_admins(people, vision, nlp) -> None:
    assert can_override(people["alice"].user, vision)
    assert not can_override(people["alice"].user, nlp)
    assert not can_override(people["bob"].user, vision)
    assert not can_override(people["bob"].user, None)
    assert can_override(people["admin"].user, None)
    assert can_override_somewhere(people["charlie"].user)
    assert not can_override_somewhere(people["dave"].user)


def test_a_non_numeric_or_missing_id_is_not_found(people) -> None:
    for wanted in ("abc", None, 10**12):
        with pytest.raises(NotFoundError):
            access_query(people["admin"].user, wanted)
