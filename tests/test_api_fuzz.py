"""Schema-driven fuzzing of the REST API: schemathesis generates requests from /api/schema/ (valid
and invalid bodies, query strings and ids) for every operation and checks each answer against the
schema. No answer may be a 500, and every status, content type and body must be the documented one.

Requests go through the real WSGI application, PostgreSQL and Redis; Kapso is the local stand-in."""

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from apps.agents.schedules import schedule_create
from apps.orgs.services import provider_key_set
from config.wsgi import application
from tests.factories import make_agent, make_api_key, make_connection, make_thread, make_user

pytestmark = pytest.mark.django_db


schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """As Django's test client does: a request's start and end must not close the test's transaction."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Each operation starts with empty rate-limit counters: all requests come from one address, and
    the invalid-key probes of many operations within a minute would otherwise trip the limit (429)."""
    cache.clear()


@pytest.fixture
def world(org, other_org, kapso):
    """Objects for the generated ids to hit, and another org's that must stay out of reach."""
    agent = make_agent(org, slug="fuzz-agent")
    connection = make_connection(org, agent=agent)
    thread = make_thread(connection)
    outsider = make_thread(make_connection(other_org, agent=make_agent(other_org)), "+15557654321")
    schedule = schedule_create(agent=agent, contact="+15551234567", prompt="Check in.", every_minutes=60)
    own_key = provider_key_set(org=org, provider="openai", key="sk-org-fuzz-1234")
    ids = {"agent_id": str(agent.id), "connection_id": str(connection.id), "thread_id": str(thread.id),
           "schedule_id": str(schedule.id), "provider_key_id": str(own_key.id)}
    # An owner's key, so the owners' endpoints (budget, provider keys) are fuzzed past their 403.
    key = make_api_key(org, created_by=make_user(org, role="owner"))
    return {"key": key, "ids": ids, "outsider_thread": str(outsider.id)}


def _aim(case, ids: dict) -> None:
    """Point about half of the generated ids at real objects, so that the fuzzing reaches past the 404s.
    Chosen from the generated value itself, so Hypothesis can still replay and shrink a failure."""
    for name, value in (case.path_parameters or {}).items():
        if name in ids and len(str(value)) % 2 == 0:
            case.path_parameters[name] = ids[name]


# Every check but two. The API refuses some schema-valid bodies by design (a slug already taken, an agent
# id of no agent in this organization: 400 with the reason), and, like most APIs, ignores query
# parameters it does not know rather than refusing them.
_NOT_CHECKED = [positive_data_acceptance, negative_data_rejection]


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_api_answer_is_a_server_error_or_off_schema(case, world):
    # Per example too: each 2xx makes schemathesis probe with an invalid key, and 40 examples of one
    # operation would pass API_INVALID_KEY_RATE (30 a minute) and get 429 instead of the 401 it checks.
    cache.clear()
    _aim(case, world["ids"])

    case.call_and_validate(headers={"Authorization": f"Bearer {world['key']}"}, excluded_checks=_NOT_CHECKED)
