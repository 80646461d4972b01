import pytest

from apps.conversations.models import Handoff, Message, Thread
from apps.webhooks.models import WebhookEvent
from tests.factories import make_thread

pytestmark = pytest.mark.django_db
WAMID = "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTdCOEM5RDBFMUYyQTNCNEMA"


@pytest.fixture
def sent_message(connection):
    thread = make_thread(connection)
    return Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="outbound",
                                  author="agent", text="On my way", wamid=WAMID, status="sent")


def deliver(post_webhook, kapso_payload, name):
    event = name.split("__")[0]
    return post_webhook("messages", kapso_payload(name), secret="conn-secret", event=event)


def test_statuses_move_the_message_forward(sent_message, post_webhook, kapso_payload):
    deliver(post_webhook, kapso_payload, "whatsapp.message.delivered__text")
    sent_message.refresh_from_db()
    assert sent_message.status == "delivered"

    deliver(post_webhook, kapso_payload, "whatsapp.message.read__text")
    sent_message.refresh_from_db()
    assert sent_message.status == "read"


def test_statuses_arriving_out_of_order_end_at_read(sent_message, post_webhook, kapso_payload):
    for name in ("whatsapp.message.read__text", "whatsapp.message.delivered__text", "whatsapp.message.sent__text"):
        assert deliver(post_webhook, kapso_payload, name).status_code == 200

    sent_message.refresh_from_db()
    assert sent_message.status == "read"


def test_a_status_of_our_message_costs_one_statement_after_the_number_lookup(
    sent_message, post_webhook, kapso_payload, django_assert_num_queries
):
    """Three of every four deliveries are statuses: the update and its receipt are one statement."""
    for name in ("whatsapp.message.sent__text", "whatsapp.message.delivered__text"):
        with django_assert_num_queries(2):
            assert deliver(post_webhook, kapso_payload, name).json() == {"status": "processed"}

    sent_message.refresh_from_db()
    assert sent_message.status == "delivered"
    assert list(WebhookEvent.objects.values_list("event", "result")) == [
        ("whatsapp.message.sent", "processed"), ("whatsapp.message.delivered", "processed")]


def test_a_redelivered_status_is_a_duplicate(sent_message, post_webhook, kapso_payload):
    payload = kapso_payload("whatsapp.message.delivered__text")
    first = post_webhook("messages", payload, secret="conn-secret", event="whatsapp.message.delivered", key="k-1")
    again = post_webhook("messages", payload, secret="conn-secret", event="whatsapp.message.delivered", key="k-1")

    assert (first.json(), again.json()) == ({"status": "processed"}, {"status": "duplicate"})
    assert WebhookEvent.objects.count() == 1
    sent_message.refresh_from_db()
    assert sent_message.status == "delivered"


def test_a_failed_status_records_the_reason(sent_message, post_webhook, kapso_payload):
    deliver(post_webhook, kapso_payload, "whatsapp.message.failed__131047")

    sent_message.refresh_from_db()
    assert sent_message.status == "failed"
    assert sent_message.error_code == "131047"
    assert "24 hours" in sent_message.error_text


def test_a_reply_from_the_business_app_is_an_operator_message_and_hands_off(connection, post_webhook, kapso_payload):
    make_thread(connection)

    response = deliver(post_webhook, kapso_payload, "whatsapp.message.sent__business_app")

    assert response.status_code == 200
    thread = Thread.objects.get()
    assert thread.handoff == Handoff.HUMAN
    message = Message.objects.get()
    assert (message.author, message.direction, message.status) == ("operator", "outbound", "sent")
    assert message.text.startswith("Hi John")


def test_a_business_app_reply_delivered_twice_is_stored_once(connection, post_webhook, kapso_payload):
    deliver(post_webhook, kapso_payload, "whatsapp.message.sent__business_app")
    deliver(post_webhook, kapso_payload, "whatsapp.message.sent__business_app")

    assert Message.objects.count() == 1


def test_a_status_for_an_unknown_message_is_recorded_as_sent_outside_switchboard(
    connection, post_webhook, kapso_payload
):
    response = deliver(post_webhook, kapso_payload, "whatsapp.message.delivered__text")

    assert response.status_code == 200
    message = Message.objects.get()
    assert (message.author, message.direction, message.status) == ("external", "outbound", "delivered")
