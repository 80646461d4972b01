"""Contact records and attributes: kept from every inbound message, read and written by operators
through the API and by the agent through contact.get / contact.update."""

import pytest

from apps.agents.models import ToolCall
from apps.agents.tasks import run_turn
from apps.contacts import services
from apps.contacts.models import Contact
from tests.conftest import json_of
from tests.factories import make_connection

pytestmark = pytest.mark.django_db
RECEIVED = "whatsapp.message.received"


def _attributes(org):
    services.attribute_create(org=org, name="lead_status", type="text", agent_writable=True)
    services.attribute_create(org=org, name="email", type="email", agent_writable=True)
    services.attribute_create(org=org, name="plan", type="text", agent_writable=False)
    services.attribute_create(org=org, name="seats", type="number")


def test_every_inbound_message_creates_or_refreshes_the_contacts_record(connection, post_webhook, kapso_payload):
    post_webhook("messages", kapso_payload("whatsapp.message.received__text"), secret="conn-secret", event=RECEIVED)
    payload = kapso_payload("whatsapp.message.received__text")
    payload["message"] = {**payload["message"], "id": "wamid.second"}
    post_webhook("messages", payload, secret="conn-secret", event=RECEIVED)

    [contact] = Contact.objects.all()
    assert (contact.org_id, contact.phone, contact.name) == (connection.org_id, "+15551234567", "John Doe")
    assert contact.last_seen_at is not None


def test_the_same_number_on_another_orgs_line_is_another_contact(connection, other_org, post_webhook, kapso_payload):
    make_connection(other_org, phone_number_id="999000111", secret="theirs")
    post_webhook("messages", kapso_payload("whatsapp.message.received__text"), secret="conn-secret", event=RECEIVED)
    payload = kapso_payload("whatsapp.message.received__text")
    payload["phone_number_id"] = "999000111"
    post_webhook("messages", payload, secret="theirs", event=RECEIVED)

    assert Contact.objects.count() == 2 and {c.org_id for c in Contact.objects.all()} == {connection.org_id,
                                                                                          other_org.id}


# --- The API -----------------------------------------------------------------------------------


def test_it_defines_attributes_and_lists_them(api, org, other_org):
    created = api.post("/api/v1/contact-attributes", {"name": "lead_status", "type": "text", "agent_writable": True},
                       format="json")
    services.attribute_create(org=other_org, name="secret_score")

    assert created.status_code == 201, created.content
    assert json_of(created)["agent_writable"] is True
    listed = json_of(api.get("/api/v1/contact-attributes"))
    assert [a["name"] for a in listed["results"]] == ["lead_status"]


@pytest.mark.parametrize("body, field", [
    ({"name": "Lead Status"}, "name"), ({"name": "lead_status", "type": "colour"}, "type"),
    ({"name": "x", "writable": True}, "writable"),
])
def test_it_refuses_unusable_attribute_definitions(api, body, field):
    response = api.post("/api/v1/contact-attributes", body, format="json")

    assert response.status_code == 400 and field in json_of(response)


def test_an_attribute_name_is_defined_once(api, org):
    services.attribute_create(org=org, name="plan")

    response = api.post("/api/v1/contact-attributes", {"name": "plan"}, format="json")

    assert response.status_code == 400 and "already" in json_of(response)["name"][0]


def test_it_reads_updates_and_filters_contacts(api, org):
    _attributes(org)
    ana = Contact.objects.create(org=org, phone="+15550000001", name="Ana")
    Contact.objects.create(org=org, phone="+15550000002", name="Bo", attributes={"lead_status": "cold"})

    patched = api.patch(f"/api/v1/contacts/{ana.id}", {"name": "Ana Ruiz", "attributes": {
        "lead_status": "Hot", "email": "ANA@example.com", "seats": "12", "plan": "pro"}}, format="json")

    assert patched.status_code == 200, patched.content
    assert json_of(patched)["attributes"] == {"lead_status": "Hot", "email": "ana@example.com", "seats": 12,
                                              "plan": "pro"}
    hot = json_of(api.get("/api/v1/contacts?attribute=lead_status&value=hot"))
    assert [c["name"] for c in hot["results"]] == ["Ana Ruiz"]
    assert json_of(api.get("/api/v1/contacts?q=Bo"))["count"] == 1
    removed = api.patch(f"/api/v1/contacts/{ana.id}", {"attributes": {"plan": None}}, format="json")
    assert "plan" not in json_of(removed)["attributes"]


@pytest.mark.parametrize("attributes", [{"seats": "many"}, {"email": "not-an-email"}, {"favourite": "blue"}])
def test_it_refuses_values_that_do_not_fit_and_changes_nothing(api, org, attributes):
    _attributes(org)
    contact = Contact.objects.create(org=org, phone="+15550000001", attributes={"seats": 3})

    response = api.patch(f"/api/v1/contacts/{contact.id}", {"attributes": attributes}, format="json")

    assert response.status_code == 400
    contact.refresh_from_db()
    assert contact.attributes == {"seats": 3}


def test_another_orgs_contacts_are_404(api, other_org):
    theirs = Contact.objects.create(org=other_org, phone="+15550000009", name="Theirs")

    assert api.get(f"/api/v1/contacts/{theirs.id}").status_code == 404
    assert api.patch(f"/api/v1/contacts/{theirs.id}", {"name": "Mine"}, format="json").status_code == 404
    assert json_of(api.get("/api/v1/contacts"))["count"] == 0
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


# --- The agent's tools -------------------------------------------------------------------------


@pytest.fixture
def openai(openai, agent):
    agent.tools = ["contact.get", "contact.update"]
    agent.save()
    return openai


@pytest.mark.django_db(transaction=True)
def test_the_agent_records_a_lead_status_and_is_refused_an_attribute_it_may_not_write(connection, openai, org):
    from tests.test_agent_turns import receive

    _attributes(org)
    Contact.objects.create(org=org, phone="+15551234567", name="John")
    openai.reply_tool_call("contact.get", {})
    openai.reply_tool_calls([("contact.update", {"attributes": {"lead_status": "qualified"}}),
                             ("contact.update", {"attributes": {"plan": "enterprise"}})])
    openai.reply_text("Thanks, noted!")

    run_turn(str(receive(connection, "We need 40 seats, please call me")))

    contact = Contact.objects.get()
    assert contact.attributes == {"lead_status": "qualified"}
    got, allowed, refused = ToolCall.objects.order_by("step", "created_at")
    assert {"name": "plan", "type": "text", "agent_writable": False} in got.result["attribute_definitions"]
    assert allowed.error == "" and allowed.result["attributes"] == {"lead_status": "qualified"}
    assert "may not change 'plan'" in refused.error
