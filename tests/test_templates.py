"""Templates: synced from Kapso (all pages), listed per number, sent from the API, the agent's tool
and any caller of the service, outside the 24-hour window too; free text refused outside it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations import services as conversations
from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from apps.whatsapp.models import MessageTemplate
from apps.whatsapp.tasks import templates_sync
from tests.conftest import json_of
from tests.factories import make_api_key, make_connection, make_thread

pytestmark = pytest.mark.django_db

ORDER_UPDATE = {
    "id": "1627019861106475",
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "parameter_format": "POSITIONAL",
    "components": [
        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped."},
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
    ],
}
WELCOME = {
    "id": "77",
    "name": "welcome_back",
    "language": "es",
    "status": "APPROVED",
    "category": "MARKETING",
    "parameter_format": "NAMED",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Hola {{first_name}}"},
        {"type": "BODY", "text": "Tenemos novedades para ti."},
    ],
}
PENDING = {
    "id": "78",
    "name": "new_offer",
    "language": "en_US",
    "status": "PENDING",
    "category": "MARKETING",
    "components": [{"type": "BODY", "text": "Offer!"}],
}


@pytest.fixture
def waba(connection, kapso):
    connection.business_account_id = "102290129340398"
    connection.save()
    kapso.templates = [ORDER_UPDATE, WELCOME, PENDING]
    templates_sync(str(connection.pk))
    return connection


@pytest.fixture
def closed_thread(waba):
    """The contact last wrote two days ago: only templates may go."""
    return make_thread(waba, last_inbound_at=timezone.now() - timedelta(days=2))


def test_sync_reads_every_page_and_keeps_what_kapso_lists(connection, kapso):
    connection.business_account_id = "102290129340398"
    connection.save()
    kapso.templates = [dict(ORDER_UPDATE, id=str(i), name=f"t_{i:03d}") for i in range(150)]
    MessageTemplate.objects.create(
        org=connection.org,
        connection=connection,
        name="deleted_in_meta",
        language="en",
        status="APPROVED",
        synced_at=timezone.now(),
    )

    templates_sync(str(connection.pk))

    assert MessageTemplate.objects.filter(connection=connection).count() == 150
    assert not MessageTemplate.objects.filter(name="deleted_in_meta").exists()
    pages = kapso.requests_to("GET", r"/102290129340398/message_templates")
    assert len(pages) == 2 and "after=100" in pages[1]["path"]


def test_the_api_lists_a_numbers_templates_with_their_variables(api, waba, other_org):
    response = api.get(f"/api/v1/connections/{waba.pk}/templates")

    assert response.status_code == 200
    by_name = {t["name"]: t for t in json_of(response)["results"]}
    assert by_name["order_update"]["variables"] == ["1", "2"]
    assert (by_name["welcome_back"]["status"], by_name["welcome_back"]["category"]) == ("APPROVED", "MARKETING")
    assert by_name["welcome_back"]["variables"] == ["first_name"]
    assert by_name["new_offer"]["status"] == "PENDING"
    other = make_connection(other_org)
    assert api.get(f"/api/v1/connections/{other.pk}/templates").status_code == 404


def test_a_template_goes_out_from_the_api_outside_the_window_in_kapsos_shape(api, closed_thread, kapso):
    body = {"template": {"name": "order_update", "language": "en_US", "variables": ["Maria", "A-1001"]}}

    response = api.post(f"/api/v1/threads/{closed_thread.pk}/messages", body, format="json")

    assert response.status_code == 201, response.content
    (queued,) = json_of(response)["results"]
    assert queued["type"] == "template" and queued["status"] == "queued"
    assert queued["text"] == "Hi Maria, your order A-1001 has shipped.\nReply STOP to opt out"
    outbox_drain(str(closed_thread.pk))
    (sent,) = kapso.sent
    assert sent["type"] == "template" and sent["to"] == "15551234567"
    assert sent["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Maria"}, {"type": "text", "text": "A-1001"}]}
        ],
    }
    assert Message.objects.get(pk=queued["id"]).status == "sent"


def test_named_variables_are_sent_with_their_names(closed_thread, kapso):
    conversations.template_send(thread=closed_thread, name="welcome_back", language="es", variables=["Ana"])

    outbox_drain(str(closed_thread.pk))

    assert kapso.sent[0]["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]}
    ]


def test_free_text_outside_the_window_is_refused_with_the_reason(api, closed_thread):
    response = api.post(f"/api/v1/threads/{closed_thread.pk}/messages", {"text": "Hello?"}, format="json")

    assert response.status_code == 409
    assert "24 hours" in json_of(response)["error"]
    assert not Message.objects.filter(thread=closed_thread).exists()


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ({"name": "no_such", "language": "en_US", "variables": []}, "There is no template 'no_such'"),
        ({"name": "new_offer", "language": "en_US", "variables": []}, "is pending, not approved"),
        ({"name": "order_update", "language": "en_US", "variables": ["Maria"]}, "has 2 variable(s); 1 were given"),
        ({"name": "order_update", "language": "en_US", "variables": ["Maria", " "]}, "Variable 2 must be"),
    ],
)
def test_a_template_that_cannot_go_is_refused_and_nothing_is_queued(api, closed_thread, template, why):
    response = api.post(f"/api/v1/threads/{closed_thread.pk}/messages", {"template": template}, format="json")

    assert response.status_code == 409
    assert why in json_of(response)["error"]
    assert not Message.objects.filter(thread=closed_thread).exists()


def test_text_and_template_together_is_a_400(api, closed_thread):
    body = {"text": "hi", "template": {"name": "order_update", "language": "en_US"}}

    response = api.post(f"/api/v1/threads/{closed_thread.pk}/messages", body, format="json")

    assert response.status_code == 400


def test_another_tenants_thread_is_a_404(waba, other_org, closed_thread):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(other_org)}")
    body = {"template": {"name": "order_update", "language": "en_US", "variables": ["a", "b"]}}

    assert client.post(f"/api/v1/threads/{closed_thread.pk}/messages", body, format="json").status_code == 404


# --- The dashboard -----------------------------------------------------------------------------------


def test_the_thread_page_offers_templates_when_the_window_is_closed_and_sends_one(client, closed_thread, kapso):
    from tests.factories import make_user
    from tests.test_dashboard_support import org_url, signed_in

    client = signed_in(client, make_user(closed_thread.org, "operator"))
    page = client.get(org_url("thread", closed_thread.org, thread_id=closed_thread.pk)).content.decode()
    assert "Send an approved template" in page and 'value="order_update|en_US"' in page
    assert "new_offer" not in page  # pending: not offered

    form_url = org_url("thread-template-form", closed_thread.org, thread_id=closed_thread.pk)
    fields = client.get(form_url, {"template": "order_update|en_US", "var_0": "Maria"}).content.decode()
    assert 'name="var_0"' in fields and 'name="var_1"' in fields
    assert "Hi Maria, your order {{2}} has shipped." in fields  # the preview, as far as it is filled

    send_url = org_url("thread-template-send", closed_thread.org, thread_id=closed_thread.pk)
    refused = client.post(send_url, {"template": "order_update|en_US", "var_0": "Maria"}, HTTP_HX_REQUEST="true")
    assert "Variable 2 must be a non-empty text" in refused.content.decode()
    response = client.post(send_url, {"template": "order_update|en_US", "var_0": "Maria", "var_1": "A-1001"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    message = Message.objects.get(thread=closed_thread)
    assert (message.type, message.author, message.text.splitlines()[0]) == (
        "template", "operator", "Hi Maria, your order A-1001 has shipped.")
    free_text = client.post(org_url("thread-reply", closed_thread.org, thread_id=closed_thread.pk),
                            {"text": "hello?"}, HTTP_HX_REQUEST="true")
    assert "24 hours" in free_text.content.decode() and Message.objects.filter(thread=closed_thread).count() == 1


def test_the_connection_page_lists_templates_and_refreshes_them(client, waba, kapso):
    from tests.factories import make_user
    from tests.test_dashboard_support import org_url, signed_in

    client = signed_in(client, make_user(waba.org, "operator"))
    page = client.get(org_url("connection", waba.org, connection_id=waba.pk)).content.decode()
    assert "<code>order_update</code>" in page and "first_name" in page and "pending" in page

    kapso.templates = [ORDER_UPDATE]
    client.post(org_url("connection-templates-sync", waba.org, connection_id=waba.pk))

    assert list(MessageTemplate.objects.filter(connection=waba).values_list("name", flat=True)) == ["order_update"]
