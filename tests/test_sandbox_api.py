"""The sandbox's API is Kapso's: same paths, envelopes, headers and error bodies as the documented
fixtures (tests/fixtures/kapso, docs/kapso.md §1–7)."""

import json
from pathlib import Path

import pytest

from sandbox import services
from sandbox.models import Customer, FailureKind, SetupLink
from tests.fakes.sandbox_support import shape_mismatches

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kapso"
PLATFORM = "/sandbox/platform/v1"
META = "/sandbox/meta/whatsapp/v24.0"
KEY = {"HTTP_X_API_KEY": "any-key"}

pytestmark = [pytest.mark.django_db]


def documented(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(autouse=True)
def sandbox_on(settings):
    settings.KAPSO_SANDBOX = True
    settings.KAPSO_SANDBOX_ALLOW_IN_PRODUCTION = True  # the test settings run with DEBUG off
    settings.KAPSO_SANDBOX_API_KEY = ""


@pytest.fixture
def api(client):
    def call(method: str, path: str, body: dict | None = None, **headers):
        extra = {**KEY, **headers}
        kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body is not None else {}
        return getattr(client, method.lower())(path, **kwargs, **extra)

    return call


@pytest.fixture
def number(db):
    customer = services.customer_create(name="Acme Shop", external_customer_id="org_1")
    link = services.setup_link_create(customer=customer, options={}, base_url="http://testserver/sandbox")
    normalized = services.setup_offered_numbers(link)[0][0]
    return services.setup_link_complete(link_id=link.id, normalized=normalized).phone_number


def test_it_refuses_a_platform_call_without_an_api_key(client):
    response = client.get(f"{PLATFORM}/customers")

    assert response.status_code == 401
    assert isinstance(response.json()["error"], str)


def test_it_answers_a_meta_error_object_without_an_api_key(client, number):
    response = client.post(f"{META}/{number.phone_number_id}/messages", data="{}", content_type="application/json")

    assert response.status_code == 401
    error = response.json()["error"]
    assert {"message", "type", "code"} <= set(error)


def test_it_accepts_only_the_configured_key_when_one_is_set(api, settings):
    settings.KAPSO_SANDBOX_API_KEY = "pinned"

    assert api("GET", f"{PLATFORM}/customers").status_code == 401
    assert api("GET", f"{PLATFORM}/customers", HTTP_X_API_KEY="pinned").status_code == 200


def test_it_creates_a_customer_in_the_documented_envelope(api):
    response = api("POST", f"{PLATFORM}/customers", {"customer": {"name": "Acme", "external_customer_id": "org_9"}})

    assert response.status_code == 201
    assert shape_mismatches(documented("api__customer_created"), response.json()) == []
    assert response.json()["data"]["external_customer_id"] == "org_9"
    assert response["X-RateLimit-Limit"]


def test_it_refuses_a_customer_without_a_name_with_a_string_error(api):
    response = api("POST", f"{PLATFORM}/customers", {"customer": {"name": " "}})

    assert response.status_code == 422
    assert isinstance(response.json()["error"], str)
    assert not Customer.objects.exists()


def test_it_lists_customers_with_pagination_meta_and_headers(api):
    for n in range(3):
        services.customer_create(name=f"C{n}", external_customer_id=None)

    response = api("GET", f"{PLATFORM}/customers?per_page=2")

    assert response.json()["meta"] == {"page": 1, "per_page": 2, "total_pages": 2, "total_count": 3}
    assert len(response.json()["data"]) == 2
    assert response["X-Total"] == "3" and 'rel="next"' in response["Link"]


def test_a_setup_link_has_the_documented_shape_and_a_browser_url(api):
    customer = services.customer_create(name="Acme", external_customer_id=None)
    body = {"setup_link": {"success_redirect_url": "https://sb.example/done", "failure_redirect_url": "https://sb.example/failed"}}

    response = api("POST", f"{PLATFORM}/customers/{customer.id}/setup_links", body)

    assert response.status_code == 201
    data = response.json()["data"]
    assert shape_mismatches(documented("api__setup_link_created"), response.json()) == []
    assert data["url"] == f"http://testserver/sandbox/setup/{data['token']}"
    assert data["status"] == "active" and data["whatsapp_setup_status"] == "pending"


def test_a_new_setup_link_revokes_the_previous_one(api):
    customer = services.customer_create(name="Acme", external_customer_id=None)
    first = api("POST", f"{PLATFORM}/customers/{customer.id}/setup_links", {"setup_link": {}}).json()["data"]

    api("POST", f"{PLATFORM}/customers/{customer.id}/setup_links", {"setup_link": {}})

    assert SetupLink.objects.get(pk=first["id"]).status == "revoked"
    listed = api("GET", f"{PLATFORM}/customers/{customer.id}/setup_links?status=active").json()["data"]
    assert len(listed) == 1 and "token" not in listed[0]


def test_an_unknown_customer_is_a_404_with_a_string_error(api):
    response = api("POST", f"{PLATFORM}/customers/7f8a9b1c-2d3e-4f5a-6b7c-8d9e0f1a2b3c/setup_links", {"setup_link": {}})

    assert response.status_code == 404
    assert isinstance(response.json()["error"], str)


def test_a_phone_number_has_the_documented_shape(api, number):
    response = api("GET", f"{PLATFORM}/whatsapp/phone_numbers/{number.phone_number_id}")

    assert response.status_code == 200
    assert shape_mismatches(documented("api__phone_number"), response.json()) == []
    assert response.json()["data"]["display_phone_number"] == number.display_phone_number


def test_a_number_webhook_is_registered_in_the_documented_shape(api, number):
    body = {"whatsapp_webhook": {"url": "https://sb.example/webhook/kapso/messages", "secret_key": "s3cret",
                                 "events": ["whatsapp.message.received"], "kind": "kapso", "active": True,
                                 "payload_version": "v2"}}

    response = api("POST", f"{PLATFORM}/whatsapp/phone_numbers/{number.phone_number_id}/webhooks", body)

    assert response.status_code == 201
    assert shape_mismatches(documented("api__webhook_created"), response.json()) == []
    assert response.json()["data"]["phone_number_id"] == number.phone_number_id


def test_a_number_webhook_needs_a_secret(api, number):
    body = {"whatsapp_webhook": {"url": "https://sb.example/hook", "events": ["whatsapp.message.received"]}}

    response = api("POST", f"{PLATFORM}/whatsapp/phone_numbers/{number.phone_number_id}/webhooks", body)

    assert response.status_code == 422
    assert "secret_key" in response.json()["error"]


def test_a_webhook_can_be_read_updated_and_deleted(api, number):
    hook = services.webhook_create(number=number, data={"url": "https://sb.example/h", "secret_key": "s",
                                                        "events": ["whatsapp.message.sent"]})
    path = f"{PLATFORM}/whatsapp/phone_numbers/{number.phone_number_id}/webhooks/{hook.id}"

    assert api("GET", path).json()["data"]["id"] == str(hook.id)
    assert api("PATCH", path, {"whatsapp_webhook": {"active": False}}).json()["data"]["active"] is False
    assert api("DELETE", path).status_code == 204
    assert api("GET", path).status_code == 404


def open_window(number, contact="15551234567"):
    services.contact_message_receive(number=number, contact=contact, name="Alex", text="hi")


def send(api, number, to="15551234567", text="Hello"):
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
            "text": {"body": text, "preview_url": False}}
    return api("POST", f"{META}/{number.phone_number_id}/messages", body)


def test_a_send_answers_the_documented_shape(api, number):
    open_window(number)

    response = send(api, number)

    assert response.status_code == 200
    assert shape_mismatches(documented("api__send_ok"), response.json()) == []
    assert response.json()["messages"][0]["id"].startswith("wamid.")


def test_a_send_outside_the_24_hour_window_is_a_422_with_code_131047(api, number):
    response = send(api, number, to="15557654321")

    assert response.status_code == 422
    assert shape_mismatches(documented("api__send_error_131047"), response.json()) == []
    assert response.json()["error"]["code"] == 131047


def test_an_armed_429_answers_retry_after_and_the_documented_body(api, number):
    open_window(number)
    services.failure_arm(number=number, kind=FailureKind.RATE_LIMITED, count=1, retry_after=7)

    response = send(api, number)

    assert response.status_code == 429
    assert response.json() == documented("api__rate_limited_429")
    assert response["Retry-After"] == "7" and response["X-RateLimit-Remaining"] == "0"
    assert send(api, number).status_code == 200  # armed once: the next send works


def test_an_armed_409_answers_the_in_flight_string_error(api, number):
    open_window(number)
    services.failure_arm(number=number, kind=FailureKind.IN_FLIGHT, count=1)

    response = send(api, number)

    assert response.status_code == 409
    assert response.json() == documented("api__send_error_409_in_flight")


def test_an_armed_500_answers_a_meta_error_object(api, number):
    open_window(number)
    services.failure_arm(number=number, kind=FailureKind.SERVER_ERROR, count=2)

    first, second, third = send(api, number), send(api, number), send(api, number)

    assert (first.status_code, second.status_code, third.status_code) == (500, 500, 200)
    assert {"message", "type", "code"} <= set(first.json()["error"])


def test_an_armed_131047_answers_inside_the_window_too(api, number):
    open_window(number)
    services.failure_arm(number=number, kind=FailureKind.OUTSIDE_WINDOW, count=1)

    response = send(api, number)

    assert response.status_code == 422 and response.json()["error"]["code"] == 131047


def test_a_send_to_an_unknown_number_is_a_meta_404(api):
    response = api("POST", f"{META}/999999999999999/messages", {"messaging_product": "whatsapp", "to": "1555",
                                                                 "type": "text", "text": {"body": "x"}})

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "GraphMethodException"


def test_a_bad_send_body_is_a_400_meta_error(api, number):
    response = api("POST", f"{META}/{number.phone_number_id}/messages", {"to": "15551234567", "type": "text"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


def test_a_text_over_4096_characters_is_refused(api, number):
    open_window(number)

    assert send(api, number, text="x" * 4097).status_code == 400


def test_mark_read_answers_success_and_marks_the_contacts_message(api, number):
    open_window(number)
    inbound = number.messages.get()

    response = api("POST", f"{META}/{number.phone_number_id}/messages",
                   {"messaging_product": "whatsapp", "status": "read", "message_id": inbound.wamid,
                    "typing_indicator": {"type": "text"}})

    assert response.json() == {"success": True}
    inbound.refresh_from_db()
    assert inbound.status == "read"


def test_history_lists_messages_newest_first_with_kapso_fields_and_cursors(api, number):
    open_window(number)
    send(api, number, text="first reply")
    send(api, number, text="second reply")

    page = api("GET", f"{META}/{number.phone_number_id}/messages?limit=2&fields=kapso(default)").json()

    assert [row.get("text", {}).get("body") for row in page["data"]] == ["second reply", "first reply"]
    assert page["data"][0]["to"] == "15551234567" and page["data"][0]["kapso"]["direction"] == "outbound"
    older = api("GET", page["paging"]["next"].split("testserver", 1)[1]).json()
    assert [row["text"]["body"] for row in older["data"]] == ["hi"]
    assert older["data"][0]["from"] == "15551234567"


def test_history_filters_by_direction_and_since(api, number):
    open_window(number)
    send(api, number, text="reply")

    rows = api("GET", f"{META}/{number.phone_number_id}/messages", data={
        "direction": "outbound", "since": "2000-01-01T00:00:00+00:00"}).json()["data"]

    assert [row["text"]["body"] for row in rows] == ["reply"]
    assert "kapso" not in rows[0]  # Kapso fields are opt-in on history


def test_platform_history_uses_the_data_envelope_and_cursor_paging(api, number):
    open_window(number)

    body = api("GET", f"{PLATFORM}/whatsapp/messages?phone_number_id={number.phone_number_id}").json()

    assert body["data"][0]["kapso"]["phone_number_id"] == number.phone_number_id
    assert "cursors" in body["paging"]


def test_what_the_sandbox_does_not_implement_answers_501_with_a_hint(api, number):
    response = api("GET", f"{META}/{number.business_account_id}/flows")

    assert response.status_code == 501
    assert response.json()["error"] == "not_implemented"


def test_it_lists_the_business_accounts_templates(api, number):
    response = api("GET", f"{META}/{number.business_account_id}/message_templates")

    assert response.status_code == 200
    assert [t["name"] for t in response.json()["data"]] == ["order_update", "follow_up"]


def test_deleting_a_number_answers_204(api, number):
    response = api("DELETE", f"{PLATFORM}/whatsapp/phone_numbers/{number.phone_number_id}")

    assert response.status_code == 204
    assert api("GET", f"{PLATFORM}/whatsapp/phone_numbers/{number.phone_number_id}").status_code == 404
