"""No 500 for bad input: impossible dates in cursors, deeply nested or invalid JSON and lone
surrogates in API bodies, a webhook secret that can no longer be decrypted after a key rotation.
Each gets a clear 4xx or a visible error state, and changes nothing."""

import pytest
from cryptography.fernet import Fernet

from apps.agents.models import Agent
from apps.agents.tools import ToolContext, ToolError, tool_run
from apps.webhooks.models import WebhookEvent
from apps.whatsapp.models import WhatsAppConnection
from tests.factories import make_thread, make_user
from tests.test_dashboard_support import org_url

pytestmark = pytest.mark.django_db
IMPOSSIBLE = ["2026-02-30T10:00:00Z", "2026-13-01T00:00:00+00:00", "2026-01-01T25:61:00Z", "9999-99-99"]
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.parametrize("value", IMPOSSIBLE)
def test_impossible_dates_in_the_thread_cursors_are_ignored_not_a_500(client, org, connection, value):
    thread = make_thread(connection)
    client.force_login(make_user(org, role="operator"))

    page = client.get(org_url("thread", org, thread_id=thread.pk), {"before": value})
    updates = client.get(org_url("thread-updates", org, thread_id=thread.pk), {"since": value}, **HTMX)
    earlier = client.get(org_url("thread-earlier", org, thread_id=thread.pk), {"before": value}, **HTMX)

    assert (page.status_code, updates.status_code) == (200, 200)
    assert earlier.status_code in (200, 302)


@pytest.mark.parametrize("value", IMPOSSIBLE)
def test_an_impossible_before_is_a_clear_tool_error(connection, agent, value):
    thread = make_thread(connection)
    context = ToolContext(org=connection.org, connection=connection, thread=thread, run=None, agent=agent)

    with pytest.raises(ToolError, match="ISO 8601"):
        tool_run("whatsapp.getConversation", {"before": value}, context)


def test_deeply_nested_json_in_an_api_body_is_a_400_and_changes_nothing(api, org, agent):
    body = "[" * 100_000 + "]" * 100_000

    for path in ("/api/v1/agents", f"/api/v1/agents/{agent.pk}/knowledge"):
        response = api.generic("POST", path, body, content_type="application/json")
        assert response.status_code == 400, (path, response.content)
    assert list(Agent.objects.filter(org=org)) == [agent]


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "x", "slug": "x", "model": {"provider": "offline", "name": "\\ud800"}}',
        '{"name": "\\udfff", "slug": "x", "model": {"provider": "offline", "name": "d"}}',
        '{"name": "a\\u0000b", "slug": "x", "model": {"provider": "offline", "name": "d"}}',
        '{"name": ',
        "not json at all",
        '{"name": "x"} trailing',
    ],
)
def test_invalid_json_lone_surrogates_and_nuls_in_an_api_body_are_a_400_and_change_nothing(api, org, body):
    response = api.generic("POST", "/api/v1/agents", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert not Agent.objects.filter(org=org).exists()


def test_a_webhook_secret_that_cannot_be_decrypted_shows_on_the_connection_and_refuses_deliveries(
    connection, post_webhook, kapso_payload
):
    # The secret was stored under a key that is no longer the one in FIELD_ENCRYPTION_KEY.
    WhatsAppConnection.objects.filter(pk=connection.pk).update(
        webhook_secret_encrypted=Fernet(Fernet.generate_key()).encrypt(b"conn-secret").decode()
    )

    responses = [
        post_webhook(
            "messages",
            kapso_payload("whatsapp.message.received__text"),
            secret="conn-secret",
            event="whatsapp.message.received",
        )
        for _ in range(2)
    ]

    assert [r.status_code for r in responses] == [401, 401]
    connection.refresh_from_db()
    assert connection.status == "error" and "can no longer be read" in connection.last_error
    assert not WebhookEvent.objects.exists()
