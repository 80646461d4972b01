"""A number removed and connected again, and Kapso answers lost on the way back: nothing is left
registered with a secret we don't know, nothing is created twice."""

import pytest

from apps.agents.models import AgentRun
from apps.conversations.models import Message
from apps.webhooks.models import WebhookEvent
from apps.webhooks.tasks import project_event_process
from apps.whatsapp import services
from apps.whatsapp.models import WhatsAppConnection

pytestmark = pytest.mark.django_db(transaction=True)
PNID = "123456789012345"
URL = "https://switchboard.test/webhook/kapso/messages"


@pytest.fixture
def pending(org, kapso):
    return services.connection_create(org=org, environment="production")


def project_event(post_webhook, pending, event):
    payload = {"phone_number_id": PNID, "project": {"id": "990e8400-e29b-41d4-a716-446655440004"},
               "customer": {"id": pending.kapso_customer_id}}
    post_webhook("project", payload, secret="test-project-secret", event=f"whatsapp.phone_number.{event}")
    project_event_process(str(WebhookEvent.objects.order_by("-created_at").first().id))
    return WhatsAppConnection.objects.get()


def test_a_number_deleted_and_created_again_gets_a_new_webhook_and_answers_again(
    pending, kapso, agent, post_webhook, kapso_payload
):
    first = project_event(post_webhook, pending, "created")
    old_secret = first.webhook_secret

    deleted = project_event(post_webhook, pending, "deleted")
    assert (deleted.status, deleted.kapso_webhook_id) == ("disconnected", "")
    kapso.webhooks.clear()  # Kapso tore the number down with its webhooks

    again = project_event(post_webhook, pending, "created")
    assert again.status == "connected" and again.kapso_webhook_id
    assert again.webhook_secret != old_secret
    assert [hook["secret_key"] for hook in kapso.webhooks] == [again.webhook_secret]
    again.agent = agent
    again.save()

    response = post_webhook("messages", kapso_payload("whatsapp.message.received__text"),
                            secret=again.webhook_secret, event="whatsapp.message.received")
    assert response.status_code == 200
    assert Message.objects.count() == 1 and AgentRun.objects.count() == 1


def test_a_webhook_whose_create_answer_was_lost_is_reused_not_duplicated(pending, kapso, post_webhook):
    kapso.webhooks.append({"id": "hook-made-before-the-timeout", "phone_number_id": PNID, "url": URL,
                           "secret_key": "a secret we never stored", "events": [], "active": True})

    connection = project_event(post_webhook, pending, "created")

    [hook] = kapso.webhooks
    assert hook["id"] == connection.kapso_webhook_id == "hook-made-before-the-timeout"
    assert hook["secret_key"] == connection.webhook_secret  # replaced by one we know
    assert not kapso.requests_to("POST", rf"/phone_numbers/{PNID}/webhooks$")


def test_extra_webhooks_at_our_url_are_removed(pending, kapso, post_webhook):
    for n in range(2):
        kapso.webhooks.append({"id": f"hook-{n}", "phone_number_id": PNID, "url": URL, "secret_key": "?"})

    project_event(post_webhook, pending, "created")

    assert [hook["id"] for hook in kapso.webhooks] == ["hook-0"]


def test_a_customer_created_before_a_timeout_is_found_not_created_again(org, kapso):
    kapso.customers.append({"id": "cus-from-the-lost-answer", "name": org.name,
                            "external_customer_id": f"org_{org.id}"})

    connection = services.connection_create(org=org, environment="production")

    assert connection.kapso_customer_id == "cus-from-the-lost-answer"
    assert not kapso.requests_to("POST", r"/platform/v1/customers$")
