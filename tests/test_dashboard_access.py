# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Every dashboard URL of an organization, walked as each kind of visitor: strangers are sent to
sign in, members of another organization get 404 (they must not learn what exists), operators get
403 on admin actions, and another organization's objects are 404 even to an owner."""

import pytest

from apps.orgs.models import Role
from tests.test_dashboard_support import (  # noqa: F401 - fixtures
    admin,
    operator,
    org_url,
    outsider,
    owner,
    signed_in,
    thread,
    world,
)

pytestmark = pytest.mark.django_db

OPERATOR, ADMIN = Role.OPERATOR, Role.ADMIN

# (method, url name, the objects it addresses, the lowest role that may use it)
ROUTES = [
    ("get", "org-home", {}, OPERATOR),
    ("get", "inbox", {}, OPERATOR),
    ("get", "thread", {"thread_id": "thread"}, OPERATOR),
    ("get", "thread-updates", {"thread_id": "thread"}, OPERATOR),
    ("get", "thread-earlier", {"thread_id": "thread"}, OPERATOR),
    ("post", "thread-reply", {"thread_id": "thread"}, OPERATOR),
    ("post", "thread-take-over", {"thread_id": "thread"}, OPERATOR),
    ("post", "thread-hand-back", {"thread_id": "thread"}, OPERATOR),
    ("get", "message-media", {"thread_id": "thread", "message_id": "media_message"}, OPERATOR),
    ("get", "thread-template-form", {"thread_id": "thread"}, OPERATOR),
    ("post", "thread-template-send", {"thread_id": "thread"}, OPERATOR),
    ("post", "connection-templates-sync", {"connection_id": "connection"}, OPERATOR),
    ("get", "connections", {}, OPERATOR),
    ("post", "connection-connect", {}, ADMIN),
    ("get", "connection-setup-success", {}, OPERATOR),
    ("get", "connection-setup-status", {}, OPERATOR),
    ("get", "connection-setup-failure", {}, OPERATOR),
    ("get", "connection", {"connection_id": "connection"}, OPERATOR),
    ("get", "connection-kapso", {"connection_id": "connection"}, OPERATOR),
    ("post", "connection-agent", {"connection_id": "connection"}, ADMIN),
    ("post", "connection-switch", {"connection_id": "connection"}, ADMIN),
    ("post", "connection-contacts", {"connection_id": "connection"}, ADMIN),
    ("post", "connection-reconnect", {"connection_id": "connection"}, ADMIN),
    ("post", "connection-disconnect", {"connection_id": "connection"}, ADMIN),
    ("get", "agents", {}, OPERATOR),
    ("get", "agent-new", {}, ADMIN),
    ("post", "agent-new", {}, ADMIN),
    ("post", "agent-preview", {}, ADMIN),
    ("get", "agent", {"agent_id": "agent"}, OPERATOR),
    ("get", "agent-edit", {"agent_id": "agent"}, ADMIN),
    ("post", "agent-edit", {"agent_id": "agent"}, ADMIN),
    ("post", "agent-delete", {"agent_id": "agent"}, ADMIN),
    ("post", "playground-send", {"agent_id": "agent"}, OPERATOR),
    ("get", "playground-updates", {"agent_id": "agent"}, OPERATOR),
    ("post", "playground-reset", {"agent_id": "agent"}, OPERATOR),
    ("get", "schedules", {"agent_id": "agent"}, OPERATOR),
    ("post", "schedule-add", {"agent_id": "agent"}, ADMIN),
    ("post", "schedule-pause", {"agent_id": "agent", "schedule_id": "schedule"}, ADMIN),
    ("post", "schedule-delete", {"agent_id": "agent", "schedule_id": "schedule"}, ADMIN),
    ("get", "org-settings", {}, OPERATOR),
    ("get", "webhooks", {}, OPERATOR),
    ("get", "webhook", {"event_id": "event"}, OPERATOR),
    ("post", "webhook-reprocess", {"event_id": "event"}, ADMIN),
    ("get", "api-keys", {}, ADMIN),
    ("post", "api-keys", {}, ADMIN),
    ("post", "api-key-revoke", {"key_id": "key"}, ADMIN),
    ("get", "members", {}, OPERATOR),
    ("post", "member-invite", {}, ADMIN),
    ("post", "member-role", {"membership_id": "membership"}, ADMIN),
    ("post", "member-remove", {"membership_id": "membership"}, ADMIN),
    ("post", "invitation-revoke", {"invitation_id": "invitation"}, ADMIN),
]


def _url(name: str, objects: dict, kwargs: dict, org=None) -> str:
    return org_url(name, org or objects["org"], **{key: objects[value].pk for key, value in kwargs.items()})


def _call(client, method: str, url: str):
    return getattr(client, method)(url)


@pytest.mark.parametrize(("method", "name", "kwargs", "role"), ROUTES, ids=[f"{m} {n}" for m, n, _, _ in ROUTES])
def test_it_sends_strangers_to_sign_in(client, world, method, name, kwargs, role):
    response = _call(client, method, _url(name, world["mine"], kwargs))

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize(("method", "name", "kwargs", "role"), ROUTES, ids=[f"{m} {n}" for m, n, _, _ in ROUTES])
def test_it_is_a_404_for_members_of_another_org(client, world, outsider, method, name, kwargs, role):
    response = _call(signed_in(client, outsider), method, _url(name, world["mine"], kwargs))

    assert response.status_code == 404


@pytest.mark.parametrize(("method", "name", "kwargs", "role"), [r for r in ROUTES if r[1] and r[2]],
                         ids=[f"{m} {n}" for m, n, k, _ in ROUTES if k])
def test_another_orgs_objects_are_a_404_even_for_an_owner(client, world, owner, method, name, kwargs, role):
    url = _url(name, world["theirs"], kwargs, org=world["mine"]["org"])

    response = _call(signed_in(client, owner), method, url)

    assert response.status_code == 404


ADMIN_ROUTES = [r for r in ROUTES if r[3] == ADMIN]


@pytest.mark.parametrize(("method", "name", "kwargs", "role"), ADMIN_ROUTES,
                         ids=[f"{m} {n}" for m, n, _, _ in ADMIN_ROUTES])
def test_admin_pages_and_actions_are_403_for_an_operator(client, world, operator, method, name, kwargs, role):
    response = _call(signed_in(client, operator), method, _url(name, world["mine"], kwargs))

    assert response.status_code == 403
    assert b"do this with your role" in response.content


# Pages an operator opens (the two that only redirect are left out).
OPERATOR_PAGES = [r for r in ROUTES if r[3] == OPERATOR and r[0] == "get" and r[1] not in ("org-home",
                                                                                           "thread-earlier")]


@pytest.mark.parametrize(("method", "name", "kwargs", "role"), OPERATOR_PAGES, ids=[n for _, n, _, _ in OPERATOR_PAGES])
def test_operator_pages_work_for_an_operator(client, world, operator, method, name, kwargs, role):
    response = _call(signed_in(client, operator), method, _url(name, world["mine"], kwargs))

    assert response.status_code == 200


@pytest.mark.parametrize("name", ["thread", "connection", "agent", "webhook"])
def test_a_malformed_id_is_a_404(client, owner, org, name):
    key = f"{name.replace('webhook', 'event')}_id"
    response = signed_in(client, owner).get(org_url(name, org, **{key: "not-a-uuid"}))

    assert response.status_code == 404


def test_an_org_that_does_not_exist_is_a_404(client, owner):
    assert signed_in(client, owner).get("/o/no-such-org/inbox/").status_code == 404


def test_an_htmx_request_without_a_session_gets_a_client_redirect(client, org):
    response = client.get(org_url("inbox", org), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/login/")
