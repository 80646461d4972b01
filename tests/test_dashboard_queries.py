# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Every list page costs a fixed number of queries, whatever the amount of data behind it."""

import uuid

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from apps.agents import playground
from apps.orgs.models import Role
from apps.orgs.services import api_key_create
from tests.factories import make_agent, make_connection, make_user, work_off_turn
from tests.test_dashboard_support import make_event, make_invitation, org_url, owner, signed_in  # noqa: F401

pytestmark = pytest.mark.django_db


def _more_connections(org, agent, n):
    for _ in range(n):
        make_connection(org, agent=agent)


def _more_agents(org, agent, n):
    for _ in range(n):
        make_agent(org)


def _more_events(org, agent, n):
    connection = make_connection(org, agent=agent)
    for _ in range(n):
        make_event(org, connection)


def _more_members(org, agent, n):
    for _ in range(n):
        make_user(org, Role.OPERATOR)
        token = uuid.uuid4().hex
        make_invitation(org, email=f"{token}@example.com", raw=token)


def _more_keys(org, agent, n):
    for _ in range(n):
        api_key_create(org=org)


PAGES = [
    ("connections", {}, _more_connections),
    ("agents", {}, _more_agents),
    ("webhooks", {}, _more_events),
    ("members", {}, _more_members),
    ("api-keys", {}, _more_keys),
]


def _count(client, url) -> int:
    with CaptureQueriesContext(db) as queries:
        assert client.get(url).status_code == 200
    return len(queries.captured_queries)


@pytest.mark.parametrize(("name", "kwargs", "grow"), PAGES, ids=[p[0] for p in PAGES])
def test_list_pages_cost_the_same_for_1_or_30_rows(client, owner, org, agent, name, kwargs, grow):
    client = signed_in(client, owner)
    url = org_url(name, org, **kwargs)
    grow(org, agent, 1)
    client.get(url)  # the session is written on the first visit to an org
    small = _count(client, url)
    grow(org, agent, 30)
    large = _count(client, url)

    assert small == large <= 8


def test_the_connection_page_costs_the_same_for_1_or_20_deliveries(client, owner, org, agent):
    connection = make_connection(org, agent=agent)
    client = signed_in(client, owner)
    url = org_url("connection", org, connection_id=connection.pk)
    make_event(org, connection)
    client.get(url)
    small = _count(client, url)
    for _ in range(25):
        make_event(org, connection)

    assert small == _count(client, url) <= 9  # one of them: the number's message templates


def test_the_agent_page_costs_the_same_for_a_short_or_long_playground(client, owner, org, agent):
    client = signed_in(client, owner)
    url = org_url("agent", org, agent_id=agent.pk)
    thread = playground.playground_thread(agent=agent, user=owner)
    playground.playground_say(thread=thread, text="one")
    work_off_turn(thread)
    client.get(url)
    small = _count(client, url)
    for i in range(20):
        playground.playground_say(thread=thread, text=f"status {i}")
        work_off_turn(thread)

    assert small == _count(client, url) <= 13  # 12, and the knowledge sources
