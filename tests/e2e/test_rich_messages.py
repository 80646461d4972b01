"""Issue "beyond text and beyond 24 hours", with real processes (gunicorn, Celery workers) and the
local stand-ins for Kapso and the model: templates outside the window from the API, the dashboard and
the agent's tool (free text refused there with the reason); an image as image content; a voice note
transcribed; a PDF's text; a button tap as the chosen option; sendButtons in Kapso's shape."""

import copy
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.agents.models import ToolCall
from apps.conversations.models import Message, Thread
from apps.whatsapp.models import MessageTemplate
from tests.e2e.conftest import PHONE_NUMBER_ID, inbound_payload, sends, settle, use_model, wait_until
from tests.factories import make_api_key, make_thread, make_user
from tests.fakes.kapso_server import fixture
from tests.media_files import PNG, pdf_with_text
from tests.test_dashboard_support import org_url
from tests.test_templates import ORDER_UPDATE

pytestmark = pytest.mark.e2e


def media_payload(fake_kapso, kind: str, *, content: bytes, content_type: str, filename: str, **kapso) -> dict:
    base = "whatsapp.message.received__audio_transcript" if kind == "audio" else "whatsapp.message.received__image"
    payload = copy.deepcopy(fixture(base))
    url = fake_kapso.add_media(filename, content, content_type)
    message = payload["message"]
    message.update(id=f"wamid.e2e.{kind}.{time.time_ns()}", timestamp=str(int(time.time())), type=kind)
    message[kind] = {"id": str(time.time_ns()), "mime_type": content_type, "filename": filename}
    message["kapso"].pop("transcript", None)
    message["kapso"].update(media_url=url, media_data={"url": url, "filename": filename, "content_type": content_type,
                                                       "byte_size": len(content)}, **kapso)
    payload["phone_number_id"] = payload["conversation"]["phone_number_id"] = PHONE_NUMBER_ID
    return payload


def last_user_content(request):
    return [m for m in request.body["messages"] if m["role"] == "user"][-1]["content"]


def test_media_and_taps_reach_the_model(tenant, start_stack, fake_kapso, model):
    org, agent, connection = tenant
    use_model(agent, model_name="gpt-4o")
    model.transcript = "Can you deliver on Friday?"
    for _ in range(4):
        model.reply_text("Noted.")
    stack = start_stack(model=model)

    image = media_payload(fake_kapso, "image", content=PNG, content_type="image/png", filename="part.png")
    assert stack.post(image).status_code == 200
    wait_until(lambda: len(model.requests) >= 1, 60, what="the image turn")
    content = last_user_content(model.requests[0])
    assert content[1]["type"] == "image_url" and content[1]["image_url"]["url"].startswith("data:image/png;base64,")

    voice = media_payload(fake_kapso, "audio", content=b"OggS voice", content_type="audio/ogg", filename="voice.ogg")
    assert stack.post(voice).status_code == 200
    wait_until(lambda: len(model.requests) >= 2, 60, what="the voice-note turn")
    assert len(model.transcriptions) == 1
    assert "Transcript: Can you deliver on Friday?" in last_user_content(model.requests[1])

    pdf = media_payload(fake_kapso, "document", content=pdf_with_text("Invoice 4711 total 99 EUR"),
                        content_type="application/pdf", filename="invoice.pdf")
    assert stack.post(pdf).status_code == 200
    wait_until(lambda: len(model.requests) >= 3, 60, what="the PDF turn")
    assert "Text of invoice.pdf:\nInvoice 4711 total 99 EUR" in last_user_content(model.requests[2])

    tap = copy.deepcopy(fixture("whatsapp.message.received__button_reply"))
    tap["message"]["id"], tap["message"]["timestamp"] = "wamid.e2e.tap", str(int(time.time()))
    assert stack.post(tap).status_code == 200
    wait_until(lambda: len(model.requests) >= 4, 60, what="the tap turn")
    assert last_user_content(model.requests[3]).endswith("[Tapped the button “Yes” (id: btn_yes)]")

    settle(lambda: Message.objects.filter(direction="outbound", status="sent").count())
    stored = Message.objects.filter(direction="inbound").exclude(type="interactive")
    assert {m.media_status for m in stored} == {"stored"}  # fetched once, kept by Switchboard
    assert Message.objects.get(type="audio").media["transcript"] == "Can you deliver on Friday?"


def test_templates_go_out_of_the_window_from_the_api_the_dashboard_and_the_tool(
    tenant, start_stack, fake_kapso, model, client, settings
):
    org, agent, connection = tenant
    settings.KAPSO_API_BASE_URL = fake_kapso.url  # the sync below runs in this process
    connection.business_account_id = "102290129340398"
    connection.save()
    fake_kapso.templates = [ORDER_UPDATE]
    use_model(agent, tools=["whatsapp.send", "whatsapp.sendTemplate", "whatsapp.sendButtons"])
    stack = start_stack(model=model)
    from apps.whatsapp.templates import templates_sync

    templates_sync(connection=connection)
    assert MessageTemplate.objects.filter(connection=connection, status="APPROVED").count() == 1
    thread = make_thread(connection, last_inbound_at=timezone.now() - timedelta(days=2))
    template = {"name": "order_update", "language": "en_US", "variables": ["Maria", "A-1001"]}
    api = {"Authorization": f"Bearer {make_api_key(org)}"}

    # The API: free text is refused with the reason, the template goes.
    refused = stack.http.post(f"/api/v1/threads/{thread.pk}/messages", json={"text": "Hi?"}, headers=api)
    assert refused.status_code == 409 and "24 hours" in refused.json()["error"]
    sent = stack.http.post(f"/api/v1/threads/{thread.pk}/messages", json={"template": template}, headers=api)
    assert sent.status_code == 201, sent.text
    wait_until(lambda: len(sends(fake_kapso)) == 1, 30, what="the API's template to reach Kapso")

    # The dashboard (its request in this process, the send on the real workers).
    client.force_login(make_user(org, "operator"))
    blocked = client.post(org_url("thread-reply", org, thread_id=thread.pk), {"text": "Hi?"}, HTTP_HX_REQUEST="true")
    assert "24 hours" in blocked.content.decode()
    client.post(org_url("thread-template-send", org, thread_id=thread.pk),
                {"template": "order_update|en_US", "var_0": "Maria", "var_1": "A-1002"}, HTTP_HX_REQUEST="true")
    wait_until(lambda: len(sends(fake_kapso)) == 2, 30, what="the dashboard's template to reach Kapso")

    # The agent, in a turn of a thread whose window is closed (a late turn): the tool refuses free
    # text and interactive messages with the reason, and sends the template.
    model.reply_tool_call("whatsapp.send", {"text": "Any news?"})
    model.reply_tool_call("whatsapp.sendTemplate", {**template, "variables": ["Maria", "A-1003"]})
    model.reply_text("")
    late = inbound_payload(wamid="wamid.e2e.late", phone="+15557770000")
    late["message"]["timestamp"] = str(int(time.time()) - 3 * 86400)
    assert stack.post(late).status_code == 200
    wait_until(lambda: len(sends(fake_kapso)) == 3, 60, what="the agent's template to reach Kapso")

    bodies = [request["body"] for request in sends(fake_kapso)]
    assert [b["type"] for b in bodies] == ["template", "template", "template"]
    assert [b["template"]["components"][0]["parameters"][1]["text"] for b in bodies] == ["A-1001", "A-1002",
                                                                                       "A-1003"]
    assert bodies[0]["template"]["name"] == "order_update" and bodies[0]["template"]["language"] == {"code": "en_US"}
    refusal = ToolCall.objects.get(name="whatsapp.send").error
    assert "24-hour customer-service window" in refusal and "sendTemplate" in refusal
    assert Thread.objects.get(contact_phone="+15557770000").messages.filter(type="text", direction="outbound",
                                                                          status="sent").count() == 0


def test_the_agents_buttons_reach_kapso_in_the_documented_interactive_shape(tenant, start_stack, fake_kapso, model):
    org, agent, connection = tenant
    use_model(agent, tools=["whatsapp.sendButtons"])
    model.reply_tool_call("whatsapp.sendButtons", {"body": "Confirm your order?", "buttons": [
        {"id": "btn_yes", "title": "Yes"}, {"id": "btn_no", "title": "No"}]})
    model.reply_text("")
    stack = start_stack(model=model)

    assert stack.post(inbound_payload(text="I want to order")).status_code == 200
    wait_until(lambda: sends(fake_kapso), 60, what="the buttons to reach Kapso")

    [send] = sends(fake_kapso)
    assert send["body"] == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "15551234567", "type": "interactive",
        "interactive": {"type": "button", "body": {"text": "Confirm your order?"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "btn_yes", "title": "Yes"}},
            {"type": "reply", "reply": {"id": "btn_no", "title": "No"}}]}},
    }
