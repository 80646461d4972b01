"""The sandbox's pages: the hosted setup page (success and failure redirects with Kapso's
parameters), the phone page and its controls, and the guard that keeps the sandbox out of production."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured

from sandbox import conf, pages, services
from sandbox.models import Delivery, SetupLink

pytestmark = [pytest.mark.django_db]
CONTACT = "15551234567"


@pytest.fixture(autouse=True)
def sandbox_on(settings):
    settings.KAPSO_SANDBOX = True
    settings.KAPSO_SANDBOX_ALLOW_IN_PRODUCTION = True


@pytest.fixture
def link():
    customer = services.customer_create(name="Acme Shop", external_customer_id=None)
    options = {"success_redirect_url": "https://sb.example/done?org=acme",
               "failure_redirect_url": "https://sb.example/failed"}
    return services.setup_link_create(customer=customer, base_url="http://testserver/sandbox", options=options)


@pytest.fixture
def number(link):
    normalized = services.setup_offered_numbers(link)[0][0]
    return services.setup_link_complete(link_id=link.id, normalized=normalized).phone_number


def query(response) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(response["Location"]).query).items()}


def test_the_setup_page_offers_three_free_test_numbers(client, link):
    response = client.get(f"/sandbox/setup/{link.token}")

    assert response.status_code == 200
    assert len(response.context["numbers"]) == 3
    assert b"Acme Shop" in response.content


def test_connecting_redirects_to_the_success_url_with_the_documented_parameters(client, link):
    normalized = services.setup_offered_numbers(link)[2][0]

    response = client.post(f"/sandbox/setup/{link.token}", {"number": normalized, "action": "connect"})

    assert response.status_code == 302 and response["Location"].startswith("https://sb.example/done?org=acme&")
    params = query(response)
    link.refresh_from_db()
    assert params == {"org": "acme", "setup_link_id": str(link.id), "status": "completed",
                      "phone_number_id": link.phone_number.phone_number_id,
                      "business_account_id": link.phone_number.business_account_id,
                      "display_phone_number": f"+{normalized}"}
    assert link.status == "used" and link.whatsapp_setup_status == "completed"


def test_cancelling_redirects_to_the_failure_url_with_an_error_code(client, link):
    response = client.post(f"/sandbox/setup/{link.token}", {"action": "cancel"})

    assert query(response) == {"setup_link_id": str(link.id), "error_code": "facebook_auth_failed"}


def test_a_used_link_redirects_with_already_used(client, link, number):
    response = client.get(f"/sandbox/setup/{link.token}")

    assert query(response)["error_code"] == "already_used"


def test_a_revoked_link_without_a_failure_url_says_so(client, link):
    SetupLink.objects.filter(pk=link.pk).update(status="revoked", options={})

    response = client.get(f"/sandbox/setup/{link.token}")

    assert response.status_code == 410 and b"revoked" in response.content


def test_a_number_that_was_not_offered_is_refused(client, link):
    response = client.post(f"/sandbox/setup/{link.token}", {"number": "15550000000", "action": "connect"})

    assert response.status_code == 302 and f"/sandbox/setup/{link.token}" in response["Location"]
    link.refresh_from_db()
    assert link.status == "active"


def test_the_index_lists_numbers_with_their_phone_pages(client, number):
    response = client.get("/sandbox/")

    assert f"/sandbox/phone/{number.phone_number_id}/".encode() in response.content


def test_typing_on_the_phone_page_sends_a_contact_message(client, number):
    response = client.post(f"/sandbox/phone/{number.phone_number_id}/send",
                           {"contact": CONTACT, "name": "Alex", "text": "Hello"}, HTTP_X_SANDBOX_FRAGMENT="1")

    assert response.status_code == 200 and b'data-direction="inbound"' in response.content
    message = number.messages.get()
    assert (message.text, message.conversation.contact_phone, message.conversation.contact_name) == (
        "Hello", CONTACT, "Alex")


def test_looking_at_the_chat_marks_delivered_replies_read(client, number):
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="hi")
    services.outbound_send(number=number, body={"messaging_product": "whatsapp", "to": CONTACT, "type": "text",
                                                "text": {"body": "hello back"}})
    reply = number.messages.get(direction="outbound")
    services.message_advance(message=reply, status="sent")

    client.get(f"/sandbox/phone/{number.phone_number_id}/chat", {"contact": CONTACT, "seen": "1"})

    reply.refresh_from_db()
    assert reply.status == "read"
    assert [entry["status"] for entry in reply.statuses] == ["sent", "delivered", "read"]


def test_the_failure_control_arms_the_next_sends(client, number):
    client.post(f"/sandbox/phone/{number.phone_number_id}/failures", {"kind": "429", "count": "2", "retry_after": "5"})

    number.refresh_from_db()
    assert (number.fail_kind, number.fail_remaining, number.fail_retry_after) == ("429", 2, 5)
    client.post(f"/sandbox/phone/{number.phone_number_id}/failures", {"kind": ""})
    number.refresh_from_db()
    assert number.fail_remaining == 0


def test_the_batching_control_turns_buffering_on_for_the_numbers_webhooks(client, number):
    services.webhook_create(number=number, data={"url": "https://sb.example/w", "secret_key": "s",
                                                 "events": ["whatsapp.message.received"]})

    client.post(f"/sandbox/phone/{number.phone_number_id}/buffering", {"enabled": "1", "window": "3"})

    hook = number.webhooks.get()
    assert (hook.buffer_enabled, hook.buffer_window_seconds, hook.buffer_events) == (
        True, 3, ["whatsapp.message.received"])


def test_redeliver_queues_a_task_and_never_redirects_off_the_sandbox(client, number, monkeypatch):
    queued = []
    monkeypatch.setattr(pages, "enqueue", lambda task, *args, **kwargs: queued.append((task.name, args)))
    delivery = Delivery.objects.create(webhook=services.webhook_create(
        number=number, data={"url": "https://sb.example/w", "secret_key": "s", "events": ["x"]}), event="x")

    response = client.post(f"/sandbox/deliveries/{delivery.id}/redeliver", {"next": "https://evil.example/"})

    assert queued == [("sandbox.tasks.redeliver_webhook", (str(delivery.id),))]
    assert response["Location"] == "/sandbox/"


def test_the_sandbox_refuses_to_run_with_debug_off_unless_allowed(settings):
    settings.DEBUG = False
    settings.KAPSO_SANDBOX_ALLOW_IN_PRODUCTION = False

    with pytest.raises(ImproperlyConfigured):
        conf.assert_allowed()
    settings.KAPSO_SANDBOX_ALLOW_IN_PRODUCTION = True
    conf.assert_allowed()
    settings.DEBUG, settings.KAPSO_SANDBOX_ALLOW_IN_PRODUCTION = True, False
    conf.assert_allowed()
