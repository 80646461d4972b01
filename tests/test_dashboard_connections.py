# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Connections: the Kapso setup link round trip, assigning agents, reconnecting, disconnecting."""

import pytest

from apps.dashboard.words import SETUP_ERRORS
from apps.kapso.errors import KapsoError
from apps.whatsapp import services as whatsapp
from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection
from tests.factories import make_agent, make_connection
from tests.test_dashboard_support import (  # noqa: F401 - fixtures
    admin,
    make_event,
    operator,
    org_url,
    owner,
    signed_in,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_connect_creates_a_setup_link_that_returns_to_the_dashboard(client, admin, org, kapso, settings):
    response = signed_in(client, admin).post(org_url("connection-connect", org), {"environment": "production"})

    connection = WhatsAppConnection.objects.get(org=org)
    assert response.status_code == 302 and response["Location"] == connection.setup_link_url
    assert connection.status == ConnectionStatus.PENDING_SETUP and connection.environment == "production"
    body = kapso.requests_to("POST", r"/setup_links$")[0]["body"]["setup_link"]
    assert body["success_redirect_url"] == f"{settings.PUBLIC_BASE_URL}/o/{org.slug}/connections/setup/success/"
    assert body["failure_redirect_url"] == f"{settings.PUBLIC_BASE_URL}/o/{org.slug}/connections/setup/failure/"


def test_connect_says_plainly_when_kapso_is_unreachable(client, admin, org):
    response = signed_in(client, admin).post(org_url("connection-connect", org), {"environment": "production"},
                                             follow=True)

    assert "Kapso did not answer just now" in response.content.decode()
    assert not WhatsAppConnection.objects.exists()


def test_the_success_page_says_connecting_until_the_project_webhook_was_processed(client, admin, org, agent, kapso):
    signed_in(client, admin).post(org_url("connection-connect", org), {"environment": "production"})
    connection = WhatsAppConnection.objects.get(org=org)
    params = {"setup_link_id": connection.setup_link_id, "status": "completed", "phone_number_id": "123456789012345",
              "display_phone_number": "+15550001111"}

    waiting = client.get(org_url("connection-setup-success", org), params)
    whatsapp.connection_complete(customer_id=connection.kapso_customer_id, phone_number_id="123456789012345")
    done = client.get(org_url("connection-setup-status", org), params, **HTMX)

    assert "Connecting +15550001111…" in waiting.content.decode()
    assert 'hx-trigger="every 2s"' in waiting.content.decode()
    body = done.content.decode()
    assert "+1 555-000-1111 is connected" in body and "every 2s" not in body  # polling stops
    assert "Agent for +1 555-000-1111" in body and agent.name in body


def test_the_success_page_tells_when_it_takes_long(client, admin, org):
    import time

    response = signed_in(client, admin).get(org_url("connection-setup-status", org),
                                            {"phone_number_id": "1", "started": str(int(time.time()) - 600)}, **HTMX)

    assert "taking longer than usual" in response.content.decode()


@pytest.mark.parametrize("code", sorted(SETUP_ERRORS))
def test_the_failure_page_explains_each_documented_error_code(client, admin, org, code):
    response = signed_in(client, admin).get(org_url("connection-setup-failure", org),
                                            {"setup_link_id": "x", "error_code": code})

    title, advice = SETUP_ERRORS[code]
    body = response.content.decode()
    assert title.replace("'", "&#x27;") in body and "Try again" in body


def test_the_failure_page_copes_with_an_unknown_code(client, operator, org):
    response = signed_in(client, operator).get(org_url("connection-setup-failure", org), {"error_code": "new_thing"})

    body = response.content.decode()
    assert "Kapso did not say why" in body and ">Try again</button>" not in body


def test_the_list_shows_status_environment_number_and_agent(client, operator, org, connection):
    make_connection(org, status=ConnectionStatus.ERROR, last_error="Kapso 404 error: phone number not found",
                    display_phone_number="+1 555-222-3333")

    body = signed_in(client, operator).get(org_url("connections", org)).content.decode()

    assert "Connected" in body and "Error" in body and "phone number not found" in body
    assert connection.display_phone_number in body and connection.agent.name in body
    assert "Connect WhatsApp" not in body  # operators cannot connect numbers


def test_an_admin_assigns_an_agent_inline(client, admin, org, connection):
    other = make_agent(org, name="Night shift")

    response = signed_in(client, admin).post(org_url("connection-agent", org, connection_id=connection.pk),
                                             {"agent": str(other.pk)}, **HTMX)

    connection.refresh_from_db()
    assert connection.agent_id == other.pk
    assert "Agent assigned." in response.content.decode() and "<html" not in response.content.decode()


def test_an_agent_of_another_org_cannot_be_assigned(client, admin, org, other_org, connection):
    stranger = make_agent(other_org)

    response = signed_in(client, admin).post(org_url("connection-agent", org, connection_id=connection.pk),
                                             {"agent": str(stranger.pk)}, **HTMX)

    connection.refresh_from_db()
    assert connection.agent_id != stranger.pk
    assert "does not exist" in response.content.decode()


def test_the_switch_pauses_and_resumes_the_agent(client, admin, org, connection):
    client = signed_in(client, admin)

    client.post(org_url("connection-switch", org, connection_id=connection.pk), {}, **HTMX)
    connection.refresh_from_db()
    assert connection.agent_enabled is False
    response = client.post(org_url("connection-switch", org, connection_id=connection.pk), {"enabled": "on"})
    connection.refresh_from_db()
    assert connection.agent_enabled is True and response.status_code == 302


def test_reconnect_asks_kapso_for_a_link_for_the_same_number(client, admin, org, kapso):
    connection = make_connection(org, status=ConnectionStatus.DISCONNECTED, display_phone_number="+1 555-000-1111")

    response = signed_in(client, admin).post(org_url("connection-reconnect", org, connection_id=connection.pk))

    connection.refresh_from_db()
    assert response["Location"] == connection.setup_link_url
    body = kapso.requests_to("POST", r"/setup_links$")[0]["body"]["setup_link"]
    assert body["reconnect_phone_number"] == "+1 555-000-1111"
    assert body["success_redirect_url"].endswith("/connections/setup/success/")


def test_disconnect_marks_it_disconnected_and_removes_kapsos_webhook(client, admin, org, kapso):
    connection = make_connection(org, kapso_webhook_id="wh-1")

    signed_in(client, admin).post(org_url("connection-disconnect", org, connection_id=connection.pk))

    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.DISCONNECTED
    assert kapso.requests_to("DELETE", rf"/phone_numbers/{connection.phone_number_id}/webhooks/wh-1$")


def test_disconnect_still_disconnects_when_kapso_fails_and_says_so(client, admin, org, monkeypatch):
    connection = make_connection(org, kapso_webhook_id="wh-1")

    def down(**kwargs):
        raise KapsoError(status=503, message="Service Unavailable", transient=True)

    monkeypatch.setattr("apps.kapso.client.delete_message_webhook", down)
    response = signed_in(client, admin).post(org_url("connection-disconnect", org, connection_id=connection.pk),
                                             follow=True)

    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.DISCONNECTED and connection.kapso_webhook_id == "wh-1"
    assert "Kapso could not be told" in response.content.decode()


def test_the_connection_page_shows_kapsos_details_and_recent_deliveries(client, operator, org, connection, kapso):
    make_event(org, connection)

    page = signed_in(client, operator).get(org_url("connection", org, connection_id=connection.pk)).content.decode()
    details = client.get(org_url("connection-kapso", org, connection_id=connection.pk), **HTMX).content.decode()

    assert "whatsapp.message.received" in page and "Processed" in page
    assert 'hx-trigger="load"' in page  # Kapso is asked after the page is shown
    assert "Green" in details and "Acme Corp" in details and "TIER_10K" in details


def test_the_connection_page_survives_kapso_being_down(client, operator, org, connection):
    details = signed_in(client, operator).get(org_url("connection-kapso", org, connection_id=connection.pk), **HTMX)

    assert details.status_code == 200
    assert "details are not available right now" in details.content.decode()


def test_an_admin_limits_whom_the_agent_answers_on_a_number(client, admin, org, connection):
    client = signed_in(client, admin)
    page = client.get(org_url("connection", org, connection_id=connection.pk)).content.decode()
    assert "Only answer these customers" in page and "at most once a day" in page

    form = {"allowed_contacts": "+15550001111\n+44 20 7946 0958", "not_allowed_text": " Members only. "}
    response = client.post(org_url("connection-contacts", org, connection_id=connection.pk), form, **HTMX)

    connection.refresh_from_db()
    assert connection.allowed_contacts == ["+15550001111", "+442079460958"]
    assert connection.not_allowed_text == "Members only."
    assert "answers only the numbers listed" in response.content.decode()


def test_a_bad_number_in_the_allowed_contacts_is_explained_and_changes_nothing(client, admin, org, connection):
    response = signed_in(client, admin).post(org_url("connection-contacts", org, connection_id=connection.pk),
                                             {"allowed_contacts": "0800 CALL NOW"}, **HTMX)

    connection.refresh_from_db()
    assert connection.allowed_contacts == []
    assert "is not a phone number in international format" in response.content.decode()


def test_another_orgs_admin_cannot_change_whom_the_agent_answers(client, org, other_org, connection):
    from tests.factories import make_user

    stranger = make_user(other_org, email="stranger@other.test")
    response = signed_in(client, stranger).post(org_url("connection-contacts", org, connection_id=connection.pk),
                                                {"allowed_contacts": "+15550001111"})

    connection.refresh_from_db()
    assert response.status_code in (403, 404) and connection.allowed_contacts == []
