"""REST API: /api/v1/connections, against the local Kapso stand-in."""

import pytest

from apps.orgs.models import Organization
from apps.whatsapp.models import WhatsAppConnection
from tests.conftest import json_of
from tests.factories import make_agent, make_connection

pytestmark = pytest.mark.django_db

CONNECTION_FIELDS = {"id", "status", "environment", "phone_number_id", "display_phone_number", "agent",
                     "agent_enabled", "resume_after_minutes", "business_hours", "agent_only_outside_hours",
                     "allowed_contacts", "not_allowed_text", "setup_url", "created_at"}


def fail_at_kapso(kapso, path: str, status: int = 500, body: dict | None = None) -> None:
    """Make the stand-in answer `status` to every POST whose path ends with `path`."""
    route = kapso.route

    def failing(method, request_path, request_body):
        if method == "POST" and request_path.split("?")[0].endswith(path):
            return status, body or {"error": "Internal server error"}, {}
        return route(method, request_path, request_body)

    kapso.route = failing


# --- Create ------------------------------------------------------------------------------------


def test_it_creates_a_pending_connection_with_a_kapso_setup_link(api, org, kapso):
    response = api.post("/api/v1/connections", {"environment": "production"}, format="json")

    assert response.status_code == 201, response.content
    body = json_of(response)
    connection = WhatsAppConnection.objects.get(org=org)
    assert body["id"] == str(connection.id)
    assert (body["status"], body["environment"]) == ("pending_setup", "production")
    assert body["setup_url"].startswith(f"{kapso.url}/whatsapp/setup/")
    assert body["setup_url"] == connection.setup_link_url
    assert set(body) == CONNECTION_FIELDS
    assert (body["agent"], body["phone_number_id"]) == (None, None)


def test_it_creates_the_kapso_customer_once_per_org_in_kapsos_wire_format(api, org, kapso):
    first = json_of(api.post("/api/v1/connections", {"environment": "development"}, format="json"))
    second = json_of(api.post("/api/v1/connections", {"environment": "development"}, format="json"))

    customers = kapso.requests_to("POST", r"^/platform/v1/customers$")
    assert len(customers) == 1
    assert customers[0]["body"] == {"customer": {"name": "Acme Shop", "external_customer_id": f"org_{org.id}"}}
    assert customers[0]["headers"]["X-API-Key"] == "test-kapso-key"
    org.refresh_from_db()
    assert org.kapso_customer_id
    links = kapso.requests_to("POST", r"/setup_links$")
    assert [r["path"] for r in links] == [f"/platform/v1/customers/{org.kapso_customer_id}/setup_links"] * 2
    assert all(r["body"] == {"setup_link": {}} for r in links)
    assert first["id"] != second["id"] and first["setup_url"] != second["setup_url"]


def test_a_new_setup_link_retires_the_previous_pending_ones(api, kapso):
    # Kapso keeps one active link per customer: the older one no longer works.
    first = json_of(api.post("/api/v1/connections", {"environment": "development"}, format="json"))
    api.post("/api/v1/connections", {"environment": "development"}, format="json")

    assert json_of(api.get(f"/api/v1/connections/{first['id']}"))["setup_url"] is None


def test_it_answers_502_and_stores_nothing_when_kapso_fails_to_create_the_customer(api, org, kapso):
    fail_at_kapso(kapso, "/platform/v1/customers")

    response = api.post("/api/v1/connections", {"environment": "development"}, format="json")

    assert response.status_code == 502
    assert json_of(response) == {"error": "Kapso: Internal server error"}
    assert not WhatsAppConnection.objects.exists()
    assert Organization.objects.get(pk=org.pk).kapso_customer_id == ""


def test_it_answers_502_and_stores_no_connection_when_the_setup_link_fails(api, org, kapso):
    fail_at_kapso(kapso, "/setup_links", status=422, body={"error": "Customer is archived"})

    response = api.post("/api/v1/connections", {"environment": "development"}, format="json")

    assert response.status_code == 502
    assert json_of(response) == {"error": "Kapso: Customer is archived"}
    assert not WhatsAppConnection.objects.exists()
    # The customer is kept, so a retry does not create a second one.
    assert Organization.objects.get(pk=org.pk).kapso_customer_id


def test_it_answers_502_when_kapso_cannot_be_reached(api, settings):
    settings.KAPSO_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens there

    response = api.post("/api/v1/connections", {"environment": "development"}, format="json")

    assert response.status_code == 502
    assert json_of(response)["error"].startswith("Kapso: ")
    assert not WhatsAppConnection.objects.exists()


@pytest.mark.parametrize("body", [{}, {"environment": "staging"}, {"environment": "development", "agent": None}])
def test_it_refuses_an_invalid_environment_without_calling_kapso(api, kapso, body):
    response = api.post("/api/v1/connections", body, format="json")

    assert response.status_code == 400
    assert json_of(response)
    assert kapso.requests == []
    assert not WhatsAppConnection.objects.exists()


# --- Read --------------------------------------------------------------------------------------


def test_it_shows_a_connected_number_without_its_secret(api, org, agent):
    connection = make_connection(org, agent=agent, secret="s3cret-never-shown", phone_number_id="555000111",
                                 display_phone_number="+1 555-000-111", setup_link_url="https://old.example/x")

    response = api.get(f"/api/v1/connections/{connection.id}")

    assert response.status_code == 200
    assert json_of(response) == {
        "id": str(connection.id), "status": "connected", "environment": "development",
        "phone_number_id": "555000111", "display_phone_number": "+1 555-000-111", "agent": str(agent.id),
        "agent_enabled": True, "setup_url": None,
        "resume_after_minutes": None, "business_hours": {}, "agent_only_outside_hours": False,
        "allowed_contacts": [], "not_allowed_text": "",
        "created_at": connection.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert b"s3cret" not in response.content and b"secret" not in response.content


def test_it_lists_the_orgs_connections_newest_first(api, org, other_org, django_assert_max_num_queries):
    agent = make_agent(org)
    mine = [make_connection(org, agent=agent) for _ in range(4)]
    make_connection(other_org)
    api.get("/api/v1/connections")

    with django_assert_max_num_queries(3):  # the API key, the count, the page
        response = api.get("/api/v1/connections")

    body = json_of(response)
    assert (body["count"], body["next"], body["previous"]) == (4, None, None)
    assert [c["id"] for c in body["results"]] == [str(c.id) for c in reversed(mine)]
    assert all(c["agent"] == str(agent.id) for c in body["results"])
    assert b"secret" not in response.content


def test_it_answers_404_for_an_unknown_or_malformed_connection_id(api):
    for connection_id in ("0b6c3d8e-1f0a-4c57-9b64-5b0e5b5f8a11", "12345"):
        response = api.get(f"/api/v1/connections/{connection_id}")

        assert response.status_code == 404
        assert json_of(response) == {"detail": "There is no connection with this id."}


# --- Assign an agent ---------------------------------------------------------------------------


def test_it_assigns_an_agent_and_switches_it_off(api, org):
    connection = make_connection(org)
    agent = make_agent(org)

    response = api.patch(f"/api/v1/connections/{connection.id}", {"agent": str(agent.id), "agent_enabled": False},
                         format="json")

    assert response.status_code == 200, response.content
    assert (json_of(response)["agent"], json_of(response)["agent_enabled"]) == (str(agent.id), False)
    connection.refresh_from_db()
    assert (connection.agent_id, connection.agent_enabled) == (agent.id, False)


def test_it_removes_the_agent_with_null(api, connection):
    response = api.patch(f"/api/v1/connections/{connection.id}", {"agent": None}, format="json")

    assert response.status_code == 200
    assert json_of(response)["agent"] is None
    connection.refresh_from_db()
    assert connection.agent_id is None and connection.agent_enabled is True


def test_it_switches_the_agent_on_and_off_without_changing_it(api, connection, agent):
    response = api.patch(f"/api/v1/connections/{connection.id}", {"agent_enabled": False}, format="json")

    assert response.status_code == 200
    connection.refresh_from_db()
    assert (connection.agent_id, connection.agent_enabled) == (agent.id, False)


@pytest.mark.parametrize("body", [{}, {"agent": "not-a-uuid"}, {"agent_enabled": None}, {"status": "connected"}])
def test_it_refuses_an_unusable_change(api, connection, agent, body):
    response = api.patch(f"/api/v1/connections/{connection.id}", body, format="json")

    assert response.status_code == 400
    assert json_of(response)
    connection.refresh_from_db()
    assert (connection.agent_id, connection.status) == (agent.id, "connected")


def test_it_refuses_another_orgs_agent_exactly_like_an_unknown_one(api, connection, agent, other_org):
    theirs = make_agent(other_org)
    unknown = "0b6c3d8e-1f0a-4c57-9b64-5b0e5b5f8a11"

    to_theirs = api.patch(f"/api/v1/connections/{connection.id}", {"agent": str(theirs.id)}, format="json")
    to_unknown = api.patch(f"/api/v1/connections/{connection.id}", {"agent": unknown}, format="json")

    assert (to_theirs.status_code, to_unknown.status_code) == (400, 400)
    assert json_of(to_theirs) == {"agent": [f"There is no agent with the id {theirs.id} in this organization."]}
    assert json_of(to_unknown) == {"agent": [f"There is no agent with the id {unknown} in this organization."]}
    connection.refresh_from_db()
    assert connection.agent_id == agent.id


# --- Give back and business hours -------------------------------------------------------------


def test_it_sets_the_give_back_time_and_business_hours(api, connection):
    hours = {"timezone": "Europe/Madrid", "days": ["mon", "fri"], "start": "9:00", "end": "17:30"}

    response = api.patch(f"/api/v1/connections/{connection.id}", {
        "resume_after_minutes": 45, "business_hours": hours, "agent_only_outside_hours": True}, format="json")

    assert response.status_code == 200, response.content
    body = json_of(response)
    assert body["resume_after_minutes"] == 45 and body["agent_only_outside_hours"] is True
    assert body["business_hours"] == {"timezone": "Europe/Madrid", "days": ["mon", "fri"], "start": "09:00",
                                      "end": "17:30"}
    assert json_of(api.patch(f"/api/v1/connections/{connection.id}", {"resume_after_minutes": None},
                             format="json"))["resume_after_minutes"] is None


@pytest.mark.parametrize("body, field", [
    ({"resume_after_minutes": 0}, "resume_after_minutes"),
    ({"resume_after_minutes": "soon"}, "resume_after_minutes"),
    ({"business_hours": {"timezone": "Nowhere/City", "days": ["mon"], "start": "09:00", "end": "17:00"}},
     "business_hours"),
    ({"business_hours": {"timezone": "UTC", "days": ["mon"], "start": "18:00", "end": "09:00"}}, "business_hours"),
    ({"agent_only_outside_hours": True}, "agent_only_outside_hours"),
    ({"resume_after_minutes": 5, "business_hours": "always"}, "business_hours"),
])
def test_it_refuses_unusable_give_back_settings_and_changes_nothing(api, connection, body, field):
    response = api.patch(f"/api/v1/connections/{connection.id}", body, format="json")

    assert response.status_code == 400
    assert field in json_of(response)
    connection.refresh_from_db()
    assert (connection.resume_after_minutes, connection.business_hours, connection.agent_only_outside_hours) == (
        None, {}, False)


# --- Other tenants -----------------------------------------------------------------------------


def test_it_never_shows_another_orgs_connection(api, other_org):
    theirs = make_connection(other_org)

    assert api.get(f"/api/v1/connections/{theirs.id}").status_code == 404
    assert json_of(api.get("/api/v1/connections"))["count"] == 0


def test_it_never_assigns_an_agent_to_another_orgs_connection(api, org, other_org):
    theirs = make_connection(other_org)

    response = api.patch(f"/api/v1/connections/{theirs.id}", {"agent": str(make_agent(org).id)}, format="json")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.agent_id is None


def test_a_new_connection_uses_the_callers_org_only(api, org, other_org, kapso):
    api.post("/api/v1/connections", {"environment": "development"}, format="json")

    assert WhatsAppConnection.objects.get().org_id == org.id
    assert Organization.objects.get(pk=other_org.pk).kapso_customer_id == ""


def test_it_sets_whom_the_agent_answers_on_a_number(api, org):
    connection = make_connection(org)

    response = api.patch(f"/api/v1/connections/{connection.id}",
                         {"allowed_contacts": ["+15550001111"], "not_allowed_text": "Members only."}, format="json")

    assert response.status_code == 200, response.content
    assert (json_of(response)["allowed_contacts"], json_of(response)["not_allowed_text"]) == (
        ["+15550001111"], "Members only.")
    connection.refresh_from_db()
    assert connection.allowed_contacts == ["+15550001111"] and connection.agent_id is None


def test_it_refuses_an_allowed_contact_that_is_not_a_phone_number(api, org):
    connection = make_connection(org)

    response = api.patch(f"/api/v1/connections/{connection.id}", {"allowed_contacts": ["555"]}, format="json")

    assert response.status_code == 400 and "international format" in str(json_of(response))
    connection.refresh_from_db()
    assert connection.allowed_contacts == []
