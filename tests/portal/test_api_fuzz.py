"""Issue #12: a property-based fuzz of the whole OpenAPI schema (schemathesis).

Every operation in `/api/schema/` gets generated requests, valid ones and invalid ones
(bounded examples per operation and mode so the suite stays quick). Two properties must
hold for each response:

- it is not a 5xx (`not_a_server_error`);
- with a documented status, its body matches the schema (`response_schema_conformance`)
  and its content type is the documented one (`content_type_conformance`).

The caller is a site admin who leads a team, so the admin-only and lead-only paths run too.
`KARIMASU_FUZZ_EXAMPLES` changes the examples per operation and mode (default 8). The
operations are driven one by one with Hypothesis directly (schemathesis's pytest plugin does
not work with this pytest), and every failure is collected before the test fails, so one
run lists them all.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from portal.accounts.models import Membership, Team
from tests.conftest import make_persona

EXAMPLES = int(os.environ.get("KARIMASU_FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def wsgi_requests_keep_the_test_connection():
    # Requests go straight to the WSGI application, as with Django's test client, and as
    # there the test's database connection must outlive each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzzer(db, settings):
    settings.REST_FRAMEWORK = {  # the fuzz sends far more than a person would
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": None, "anon": None},
    }
    team = Team.objects.create(slug="vision", name="Vision Lab")
    persona = make_persona("fuzzer", staff=True)
    Membership.objects.create(team=team, user=persona.user, role=Membership.Role.LEAD)
    return persona


def test_api_never_answers_5xx_and_keeps_to_its_schema(
    fuzzer, wsgi_requests_keep_the_test_connection
):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    headers = {"Authorization": f"Bearer {fuzzer.token}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # collected, reported below
                failures.append(f"{operation.label} [{mode}]: {str(exc)[:600]}")
    assert operations > 30
    assert failures == [], "\n\n".join(failures)
