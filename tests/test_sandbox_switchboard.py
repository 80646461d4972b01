"""Switchboard against the sandbox, over real HTTP and unchanged: its Kapso client calls the
sandbox's API, and the sandbox's signed webhooks pass Switchboard's own receivers. Only
KAPSO_API_BASE_URL points elsewhere. Celery is replaced by running the tasks in the test."""

from urllib.parse import parse_qs, urlsplit

import pytest

from apps.agents.models import AgentRun
from apps.agents.tasks import run_turn
from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from apps.kapso import client as kapso
from apps.kapso.errors import KapsoError
from apps.webhooks.models import WebhookEvent
from apps.webhooks.tasks import project_event_process
from apps.whatsapp import services as whatsapp
from apps.whatsapp.models import WhatsAppConnection
from sandbox import delivery, services
from sandbox.models import Delivery, FailureKind, PhoneNumber
from tests.factories import make_agent, make_org
from tests.fakes.sandbox_support import TaskQueue

CONTACT = "15551234567"
pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queue(settings, live_server, monkeypatch):
    settings.KAPSO_SANDBOX = True
    settings.KAPSO_SANDBOX_ALLOW_IN_PRODUCTION = True
    settings.KAPSO_SANDBOX_API_KEY = ""
    settings.KAPSO_SANDBOX_STATUS_DELAYS = "0,0"
    settings.KAPSO_API_BASE_URL = live_server.url + "/sandbox"  # the only change Switchboard sees
    settings.PUBLIC_BASE_URL = live_server.url
    settings.KAPSO_WEBHOOK_SECRET = "shared-project-secret"
    tasks = TaskQueue()
    monkeypatch.setattr(delivery, "enqueue", tasks)
    monkeypatch.setattr(services, "enqueue", tasks)
    return tasks


def complete_setup(client, url: str) -> dict:
    """Play the hosted setup page as a browser: choose the first test number, connect."""
    path = urlsplit(url).path
    page = client.get(path)
    assert page.status_code == 200 and b"Connect your WhatsApp number" in page.content
    number = page.context["numbers"][0][0]
    response = client.post(path, {"number": number, "action": "connect", "connection_type": "dedicated"})
    assert response.status_code == 302
    return {key: values[0] for key, values in parse_qs(urlsplit(response["Location"]).query).items()}


def test_the_kapso_client_works_against_the_sandbox_unchanged(queue, client):
    customer = kapso.create_customer(name="Acme", external_customer_id="org_1")
    link = kapso.create_setup_link(customer_id=customer["id"], success_redirect_url="https://sb.example/done",
                                   failure_redirect_url="https://sb.example/failed")
    params = complete_setup(client, link["url"])

    assert params["status"] == "completed" and params["setup_link_id"] == link["id"]
    assert params["display_phone_number"].startswith("+1555")
    details = kapso.get_phone_number(params["phone_number_id"])
    assert details["business_account_id"] == params["business_account_id"]
    webhook = kapso.register_message_webhook(phone_number_id=params["phone_number_id"], url="https://sb.example/w",
                                             secret_key="s")
    number = PhoneNumber.objects.get(phone_number_id=params["phone_number_id"])
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="hi")
    wamid = kapso.send_text(phone_number_id=params["phone_number_id"], to="+" + CONTACT, body="Hello!")
    assert wamid.startswith("wamid.")
    inbound = number.messages.get(direction="inbound")
    kapso.mark_read(phone_number_id=params["phone_number_id"], wamid=inbound.wamid, typing=True)
    history = kapso.list_messages(phone_number_id=params["phone_number_id"], direction="outbound",
                                  since="2000-01-01T00:00:00+00:00")
    assert [row["id"] for row in history["data"]] == [wamid]
    kapso.delete_message_webhook(phone_number_id=params["phone_number_id"], webhook_id=webhook["id"])
    assert not number.webhooks.exists()


@pytest.mark.parametrize(("kind", "status", "code", "transient", "retry_after"), [
    (FailureKind.OUTSIDE_WINDOW, 422, "131047", False, None),
    (FailureKind.RATE_LIMITED, 429, "", True, 9.0),
    (FailureKind.SERVER_ERROR, 500, "2", True, None),
    (FailureKind.IN_FLIGHT, 409, "", True, None),
])
def test_the_clients_error_classes_match_the_sandboxs_failures(queue, kind, status, code, transient, retry_after):
    customer = services.customer_create(name="Acme", external_customer_id=None)
    link = services.setup_link_create(customer=customer, options={}, base_url="http://x/sandbox")
    normalized = services.setup_offered_numbers(link)[0][0]
    number = services.setup_link_complete(link_id=link.id, normalized=normalized).phone_number
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="hi")
    services.failure_arm(number=number, kind=kind, count=1, retry_after=9)

    with pytest.raises(KapsoError) as caught:
        kapso.send_text(phone_number_id=number.phone_number_id, to=CONTACT, body="x")

    error = caught.value
    assert (error.status, error.code, error.transient, error.retry_after) == (status, code, transient, retry_after)


@pytest.fixture
def connected(queue, client):
    """Switchboard's own onboarding flow through the sandbox, end to end over HTTP."""
    org = make_org(name="Acme Shop")
    agent = make_agent(org)
    connection = whatsapp.connection_create(org=org, environment="development",
                                            success_redirect_url="https://sb.example/done")
    params = complete_setup(client, connection.setup_link_url)
    queue.run()  # the sandbox delivers whatsapp.phone_number.created to /webhook/kapso/project

    event = WebhookEvent.objects.get(event="whatsapp.phone_number.created")
    assert event.signature_valid
    project_event_process(str(event.id))  # Switchboard's task: fetches the number, registers its webhook
    connection.refresh_from_db()
    assert connection.status == "connected" and connection.phone_number_id == params["phone_number_id"]
    whatsapp.connection_assign_agent(connection=connection, agent=agent, enabled=True)
    return connection


def test_a_contacts_message_passes_switchboards_signature_check_and_gets_the_agents_reply(connected, queue):
    number = PhoneNumber.objects.get(phone_number_id=connected.phone_number_id)
    [hook] = number.webhooks.all()
    assert hook.url.endswith("/webhook/kapso/messages") and hook.secret_key == connected.webhook_secret

    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="Where is my order?")
    queue.run()

    received = Delivery.objects.get(event="whatsapp.message.received")
    assert (received.status, received.response_status) == ("delivered", 200)
    assert "processed" in received.response_body
    inbound = Message.objects.get(direction="inbound")
    assert inbound.text == "Where is my order?" and inbound.thread.contact_phone == "+" + CONTACT

    run_turn(str(AgentRun.objects.get().id))
    outbox_drain(str(inbound.thread_id))
    reply = Message.objects.get(direction="outbound")
    assert reply.status == "sent" and reply.wamid
    assert number.messages.get(direction="outbound").text == reply.text

    queue.run()  # sent → delivered webhooks
    services.contact_reads(number=number, contact=CONTACT)
    queue.run()
    reply.refresh_from_db()
    assert reply.status == "read"


def test_a_redelivered_webhook_is_a_duplicate_for_switchboard(connected, queue):
    number = PhoneNumber.objects.get(phone_number_id=connected.phone_number_id)
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="hi")
    queue.run()
    received = Delivery.objects.get(event="whatsapp.message.received")

    delivery.deliver(received.id, manual=True)

    received.refresh_from_db()
    assert received.response_status == 200 and "duplicate" in received.response_body
    assert Message.objects.filter(direction="inbound").count() == 1


def test_an_armed_131047_fails_switchboards_send_for_good(connected, queue):
    number = PhoneNumber.objects.get(phone_number_id=connected.phone_number_id)
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="hi")
    queue.run()
    services.failure_arm(number=number, kind=FailureKind.OUTSIDE_WINDOW, count=1)

    run_turn(str(AgentRun.objects.get().id))
    outbox_drain(str(Message.objects.get(direction="inbound").thread_id))

    reply = Message.objects.get(direction="outbound")
    assert (reply.status, reply.error_code) == ("failed", "131047")


def test_an_armed_429_makes_switchboard_wait_for_retry_after(connected, queue):
    number = PhoneNumber.objects.get(phone_number_id=connected.phone_number_id)
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="hi")
    queue.run()
    services.failure_arm(number=number, kind=FailureKind.RATE_LIMITED, count=1, retry_after=30)

    run_turn(str(AgentRun.objects.get().id))
    outbox_drain(str(Message.objects.get(direction="inbound").thread_id))

    reply = Message.objects.get(direction="outbound")
    assert reply.status == "queued" and reply.error_code == "429"
    assert (reply.next_attempt_at - reply.updated_at).total_seconds() >= 29


def test_removing_the_number_in_the_sandbox_disconnects_it_in_switchboard(connected, queue):
    services.phone_number_delete(number=PhoneNumber.objects.get(phone_number_id=connected.phone_number_id))
    queue.run()

    event = WebhookEvent.objects.get(event="whatsapp.phone_number.deleted")
    project_event_process(str(event.id))
    assert WhatsAppConnection.objects.get(pk=connected.pk).status == "disconnected"
