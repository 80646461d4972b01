import pytest

from apps.kapso.client import MESSAGE_WEBHOOK_EVENTS
from apps.webhooks.models import WebhookEvent
from apps.webhooks.tasks import project_event_process
from apps.whatsapp import services
from apps.whatsapp.models import WhatsAppConnection
from tests.conftest import json_of

pytestmark = pytest.mark.django_db(transaction=True)
CREATED = "whatsapp.phone_number.created"


@pytest.fixture
def pending(org, kapso):
    return services.connection_create(org=org, environment="production",
                                      success_redirect_url="https://switchboard.test/ok",
                                      failure_redirect_url="https://switchboard.test/failed")


def created_payload(pending, phone_number_id="123456789012345"):
    return {"phone_number_id": phone_number_id, "project": {"id": "990e8400-e29b-41d4-a716-446655440004"},
            "customer": {"id": pending.kapso_customer_id}}


def test_connecting_creates_one_kapso_customer_per_org_and_a_setup_link(org, kapso, pending):
    services.connection_create(org=org, environment="development")

    assert len(kapso.requests_to("POST", r"/platform/v1/customers$")) == 1
    [first, second] = kapso.requests_to("POST", r"/setup_links$")
    assert first["body"] == {"setup_link": {"success_redirect_url": "https://switchboard.test/ok",
                                            "failure_redirect_url": "https://switchboard.test/failed"}}
    assert pending.status == "pending_setup" and pending.setup_link_url.startswith(kapso.url)
    org.refresh_from_db()
    assert org.kapso_customer_id == pending.kapso_customer_id


def test_the_project_webhook_connects_the_number_and_registers_its_webhook(pending, kapso, post_webhook):
    response = post_webhook("project", created_payload(pending), secret="test-project-secret", event=CREATED)
    assert response.status_code == 200 and json_of(response) == {"status": "accepted"}

    project_event_process(str(WebhookEvent.objects.get().id))

    connection = WhatsAppConnection.objects.get()
    assert connection.status == "connected" and connection.phone_number_id == "123456789012345"
    assert connection.display_phone_number == "+1 555-000-1111"
    assert connection.business_account_id == "98765432109"
    [register] = kapso.requests_to("POST", r"/platform/v1/whatsapp/phone_numbers/123456789012345/webhooks$")
    webhook = register["body"]["whatsapp_webhook"]
    assert webhook["url"] == "https://switchboard.test/webhook/kapso/messages"
    assert webhook["events"] == MESSAGE_WEBHOOK_EVENTS and webhook["payload_version"] == "v2"
    assert len(webhook["secret_key"]) >= 32 and webhook["secret_key"] == connection.webhook_secret
    assert webhook["secret_key"] not in connection.webhook_secret_encrypted  # stored encrypted
    assert WebhookEvent.objects.get().result == "processed"


def test_each_connection_gets_its_own_webhook_secret(org, kapso, post_webhook):
    secrets = []
    for pnid in ("111", "222"):
        pending = services.connection_create(org=org, environment="production")
        services.connection_complete(customer_id=pending.kapso_customer_id, phone_number_id=pnid)
        secrets.append(WhatsAppConnection.objects.get(phone_number_id=pnid).webhook_secret)

    assert secrets[0] != secrets[1]


def test_the_wrapped_project_payload_is_accepted_too(pending, kapso, post_webhook):
    wrapped = {"event": CREATED, "data": created_payload(pending)}

    response = post_webhook("project", wrapped, secret="test-project-secret")
    project_event_process(str(WebhookEvent.objects.get().id))

    assert response.status_code == 200
    assert WhatsAppConnection.objects.get().status == "connected"


def test_processing_the_same_event_twice_registers_one_webhook(pending, kapso, post_webhook):
    post_webhook("project", created_payload(pending), secret="test-project-secret", event=CREATED)
    event_id = str(WebhookEvent.objects.get().id)
    project_event_process(event_id)
    WebhookEvent.objects.update(result="pending")

    project_event_process(event_id)

    assert len(kapso.requests_to("POST", r"/webhooks$")) == 1


def test_the_project_webhook_rejects_a_bad_signature(pending, post_webhook):
    response = post_webhook("project", created_payload(pending), secret="nope", event=CREATED)

    assert response.status_code == 401 and not WebhookEvent.objects.exists()


def test_the_project_webhook_fails_closed_without_a_configured_secret(pending, post_webhook, settings):
    settings.KAPSO_WEBHOOK_SECRET = ""

    response = post_webhook("project", created_payload(pending), secret="", event=CREATED)

    assert response.status_code == 401


def test_a_deleted_number_is_marked_disconnected(pending, kapso, post_webhook):
    services.connection_complete(customer_id=pending.kapso_customer_id, phone_number_id="123456789012345")

    post_webhook("project", created_payload(pending), secret="test-project-secret",
                 event="whatsapp.phone_number.deleted")
    project_event_process(str(WebhookEvent.objects.get().id))

    assert WhatsAppConnection.objects.get().status == "disconnected"


def test_a_kapso_outage_while_connecting_is_retried_not_lost(pending, kapso, post_webhook):
    original = kapso.route
    kapso.route = lambda method, path, body: (503, {"error": "down"}, {})
    post_webhook("project", created_payload(pending), secret="test-project-secret", event=CREATED)
    event_id = str(WebhookEvent.objects.get().id)

    from celery.exceptions import Retry

    with pytest.raises(Retry):
        project_event_process.apply(args=[event_id], throw=True)
    kapso.route = original
    project_event_process(event_id)

    assert WhatsAppConnection.objects.get().status == "connected"


def test_a_number_connected_for_an_unknown_customer_changes_nothing(org, kapso):
    assert services.connection_complete(customer_id="nobody", phone_number_id="5") is None
    assert not WhatsAppConnection.objects.exists()


def test_a_new_number_gets_the_org_s_only_agent(pending, kapso, post_webhook, agent):
    post_webhook("project", created_payload(pending), secret="test-project-secret", event=CREATED)

    project_event_process(str(WebhookEvent.objects.get().id))

    assert WhatsAppConnection.objects.get().agent_id == agent.id


def test_a_new_number_waits_for_a_choice_when_the_org_has_several_agents(pending, kapso, post_webhook, org):
    from tests.factories import make_agent

    make_agent(org), make_agent(org)
    post_webhook("project", created_payload(pending), secret="test-project-secret", event=CREATED)

    project_event_process(str(WebhookEvent.objects.get().id))

    assert WhatsAppConnection.objects.get().agent_id is None
