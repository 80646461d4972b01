"""The sandbox's webhooks are Kapso's: documented headers and payload shapes, signatures over the
exact bytes, one idempotency key per event kept on retries and redeliveries, batches, retries."""

import json
import uuid
from pathlib import Path

import pytest

from apps.kapso.signatures import signature_is_valid
from sandbox import delivery, services
from sandbox.models import Delivery, FailureKind
from tests.fakes.sandbox_support import Receiver, TaskQueue, shape_mismatches

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "kapso"
PROJECT_SECRET = "project-secret"
NUMBER_SECRET = "number-secret"
CONTACT = "15551234567"

pytestmark = pytest.mark.django_db(transaction=True)


def documented(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def queue(monkeypatch, settings, receiver):
    settings.KAPSO_SANDBOX_PROJECT_WEBHOOK_URL = receiver.url + "/webhook/kapso/project"
    settings.KAPSO_SANDBOX_PROJECT_WEBHOOK_SECRET = PROJECT_SECRET
    settings.KAPSO_SANDBOX_RETRY_DELAYS = "10,40,90"
    tasks = TaskQueue()
    monkeypatch.setattr(delivery, "enqueue", tasks)
    monkeypatch.setattr(services, "enqueue", tasks)
    return tasks


@pytest.fixture
def number(queue, receiver):
    customer = services.customer_create(name="Acme Shop", external_customer_id="org_1")
    link = services.setup_link_create(customer=customer, options={}, base_url="http://testserver/sandbox")
    normalized = services.setup_offered_numbers(link)[0][0]
    found = services.setup_link_complete(link_id=link.id, normalized=normalized).phone_number
    queue.run()
    receiver.requests.clear()
    services.webhook_create(number=found, data={
        "url": receiver.url + "/webhook/kapso/messages", "secret_key": NUMBER_SECRET,
        "events": ["whatsapp.message.received", "whatsapp.message.sent", "whatsapp.message.delivered",
                   "whatsapp.message.read", "whatsapp.message.failed", "whatsapp.conversation.created"]})
    return found


def assert_kapso_headers(request: dict, event: str, secret: str) -> None:
    headers = request["headers"]
    assert headers["X-Webhook-Event"] == event
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Webhook-Payload-Version"] == "v2"
    uuid.UUID(headers["X-Idempotency-Key"])
    signature = headers["X-Webhook-Signature"]
    assert signature == signature.lower() and len(signature) == 64
    assert signature_is_valid(secret, request["raw"], signature)
    assert request["raw"] == json.dumps(request["body"], separators=(",", ":"), ensure_ascii=False).encode()


def test_connecting_a_number_signs_phone_number_created_to_the_project_webhook(queue, receiver):
    customer = services.customer_create(name="Acme", external_customer_id=None)
    link = services.setup_link_create(customer=customer, options={}, base_url="http://testserver/sandbox")

    link = services.setup_link_complete(link_id=link.id, normalized=services.setup_offered_numbers(link)[1][0])
    queue.run()

    [request] = receiver.events("whatsapp.phone_number.created")
    assert request["path"] == "/webhook/kapso/project"
    assert_kapso_headers(request, "whatsapp.phone_number.created", PROJECT_SECRET)
    assert request["body"].keys() == documented("whatsapp.phone_number.created").keys()
    assert request["body"]["phone_number_id"] == link.phone_number.phone_number_id
    assert request["body"]["customer"] == {"id": str(customer.id)}


def test_a_contacts_message_arrives_signed_in_the_documented_shape(number, queue, receiver):
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="Hello")
    queue.run()

    [request] = receiver.events("whatsapp.message.received")
    assert_kapso_headers(request, "whatsapp.message.received", NUMBER_SECRET)
    assert shape_mismatches(documented("whatsapp.message.received__text"), request["body"]) == []
    body = request["body"]
    assert body["message"]["text"] == {"body": "Hello"}
    assert body["conversation"]["phone_number"] == "+15551234567"
    assert body["conversation"]["kapso"]["contact_name"] == "Alex"
    assert body["is_new_conversation"] is True and body["phone_number_id"] == number.phone_number_id
    assert "from" not in body["message"]  # as in Kapso's sample: receivers use the conversation
    assert len(receiver.events("whatsapp.conversation.created")) == 1


def test_a_send_is_followed_by_sent_delivered_and_read_in_the_documented_shapes(number, queue, receiver):
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="Hi")
    answer = services.outbound_send(number=number, body={
        "messaging_product": "whatsapp", "to": CONTACT, "type": "text", "text": {"body": "On my way"}})
    wamid = answer["messages"][0]["id"]
    queue.run()
    services.contact_reads(number=number, contact=CONTACT)
    queue.run()

    for status in ("sent", "delivered", "read"):
        [request] = receiver.events(f"whatsapp.message.{status}")
        assert_kapso_headers(request, f"whatsapp.message.{status}", NUMBER_SECRET)
        assert shape_mismatches(documented(f"whatsapp.message.{status}__text"), request["body"]) == [], status
        message = request["body"]["message"]
        assert message["id"] == wamid and message["kapso"]["status"] == status
    read = receiver.events("whatsapp.message.read")[0]["body"]["message"]["kapso"]["statuses"]
    assert [entry["status"] for entry in read] == ["sent", "delivered", "read"]


def test_status_webhooks_follow_the_documented_delays(number, queue, settings):
    settings.KAPSO_SANDBOX_STATUS_DELAYS = "0.3,1.0"
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="Hi")
    services.outbound_send(number=number, body={"messaging_product": "whatsapp", "to": CONTACT, "type": "text",
                                                "text": {"body": "x"}})

    assert queue.countdowns("advance_message") == [0.3]
    queue.run(only=lambda task: task.name.endswith("advance_message"), limit=1)
    assert queue.countdowns("advance_message") == [1.0]


def test_an_armed_late_failure_reports_whatsapp_message_failed_with_131047(number, queue, receiver):
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="Hi")
    services.failure_arm(number=number, kind=FailureKind.FAILED_LATER, count=1)

    services.outbound_send(number=number, body={"messaging_product": "whatsapp", "to": CONTACT, "type": "text",
                                                "text": {"body": "On my way"}})
    queue.run()

    [request] = receiver.events("whatsapp.message.failed")
    assert shape_mismatches(documented("whatsapp.message.failed__131047"), request["body"]) == []
    assert request["body"]["message"]["kapso"]["statuses"][-1]["errors"][0]["code"] == 131047
    assert not receiver.events("whatsapp.message.delivered")


def test_a_message_from_the_business_app_is_a_sent_with_origin_business_app(number, queue, receiver):
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="Hi")

    services.business_app_message_send(number=number, contact=CONTACT, text="I'll take this one")
    queue.run()

    [request] = receiver.events("whatsapp.message.sent")
    assert request["body"]["message"]["kapso"]["origin"] == "business_app"
    assert shape_mismatches(documented("whatsapp.message.sent__business_app"), request["body"]) == []


def test_buffered_messages_arrive_as_one_documented_batch(number, queue, receiver):
    services.webhook_set_buffering(number=number, enabled=True, window=2)

    for text in ("hi", "I ordered a lamp last week", "order 4411, where is it?"):
        services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text=text)
    Delivery.objects.filter(status="buffering").update(flush_at="2000-01-01T00:00:00Z")  # the window has passed
    queue.run()

    [request] = receiver.events("whatsapp.message.received")
    assert request["headers"]["X-Webhook-Batch"] == "true" and request["headers"]["X-Batch-Size"] == "3"
    assert_kapso_headers(request, "whatsapp.message.received", NUMBER_SECRET)
    assert shape_mismatches(documented("whatsapp.message.received__batch"), request["body"]) == []
    assert [item["message"]["text"]["body"] for item in request["body"]["data"]] == [
        "hi", "I ordered a lamp last week", "order 4411, where is it?"]
    info = request["body"]["batch_info"]
    assert info["size"] == 3 and info["window_ms"] == 2000 and info["first_sequence"] < info["last_sequence"]


def test_a_batch_waits_for_its_window(number, queue, receiver):
    services.webhook_set_buffering(number=number, enabled=True, window=5)
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="hi")

    queue.run()

    assert not receiver.events("whatsapp.message.received")
    assert queue.countdowns("flush_batch")  # it looks again when the window will have passed


def test_a_failed_delivery_is_retried_after_10_40_90_seconds_with_the_same_key_and_bytes(number, queue, receiver):
    receiver.status = 500
    number.webhooks.update(events=["whatsapp.message.received"])
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="Hello")

    for expected in (10, 40, 90):
        queue.run(only=lambda task: not task.name.endswith("advance_message"), limit=1)
        assert queue.countdowns("deliver_webhook")[-1] == expected
    queue.run(only=lambda task: task.name.endswith("deliver_webhook"))

    attempts = receiver.events("whatsapp.message.received")
    assert len(attempts) == 4
    assert len({a["headers"]["X-Idempotency-Key"] for a in attempts}) == 1
    assert len({a["raw"] for a in attempts}) == 1
    failed = Delivery.objects.get(event="whatsapp.message.received")
    assert (failed.status, failed.attempt_count, failed.response_status) == ("failed", 4, 500)


def test_a_batch_that_failed_for_good_falls_back_to_single_deliveries(number, queue, receiver, settings):
    settings.KAPSO_SANDBOX_RETRY_DELAYS = ""
    receiver.script = [500]
    number.webhooks.update(events=["whatsapp.message.received"])
    services.webhook_set_buffering(number=number, enabled=True, window=1)
    for text in ("one", "two"):
        services.contact_message_receive(number=number, contact=CONTACT, name="", text=text)
    Delivery.objects.filter(status="buffering").update(flush_at="2000-01-01T00:00:00Z")

    queue.run()

    received = receiver.events("whatsapp.message.received")
    assert [r["headers"].get("X-Webhook-Batch") for r in received] == ["true", None, None]
    assert [r["body"]["message"]["text"]["body"] for r in received[1:]] == ["one", "two"]


def test_a_redelivery_sends_the_same_bytes_and_key_again(number, queue, receiver):
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="Hello")
    queue.run()
    first = receiver.events("whatsapp.message.received")[0]

    delivery.deliver(Delivery.objects.get(event="whatsapp.message.received").id, manual=True)

    again = receiver.events("whatsapp.message.received")[1]
    assert again["raw"] == first["raw"]
    assert again["headers"]["X-Idempotency-Key"] == first["headers"]["X-Idempotency-Key"]
    assert again["headers"]["X-Webhook-Signature"] == first["headers"]["X-Webhook-Signature"]


def test_unsubscribed_events_are_not_delivered(queue, receiver, number):
    number.webhooks.update(events=["whatsapp.message.received"])
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="Hi")
    services.outbound_send(number=number, body={"messaging_product": "whatsapp", "to": CONTACT, "type": "text",
                                                "text": {"body": "x"}})
    queue.run()

    assert {r["headers"]["X-Webhook-Event"] for r in receiver.requests} == {"whatsapp.message.received"}


def test_removing_a_number_signs_phone_number_deleted(number, queue, receiver):
    services.phone_number_delete(number=number)
    queue.run()

    [request] = receiver.events("whatsapp.phone_number.deleted")
    assert_kapso_headers(request, "whatsapp.phone_number.deleted", PROJECT_SECRET)
    assert request["body"].keys() == documented("whatsapp.phone_number.deleted").keys()

