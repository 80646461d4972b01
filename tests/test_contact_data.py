"""The data of contacts: export, erase (searched for afterwards in every column of every table),
retention, STOP/START opt-out."""

import copy
import json
from datetime import timedelta

import pytest
from django.db import connection as db
from django.utils import timezone

from apps.agents.models import AgentRun
from apps.agents.tasks import run_turn
from apps.contacts.models import Contact
from apps.conversations.models import Message, Note, Thread, ThreadErasure
from apps.conversations.privacy import retention_purge
from apps.conversations.tasks import outbox_drain
from apps.webhooks.models import WebhookEvent
from tests.conftest import json_of
from tests.factories import make_api_key
from tests.fakes.kapso_server import fixture

pytestmark = pytest.mark.django_db(transaction=True)

PHONE, NAME, SECRET_TEXT = "+15557654321", "Zed Quillfeather", "my order 99118 goes to 7 Larch Lane"
OTHER_PHONE = "+15550001234"
RECEIVED = "whatsapp.message.received"


def inbound(*, wamid: str, phone: str = PHONE, name: str = NAME, text: str = SECRET_TEXT) -> dict:
    payload = copy.deepcopy(fixture("whatsapp.message.received__text"))
    payload["message"].update(id=wamid, timestamp=str(int(timezone.now().timestamp())))
    payload["message"]["text"]["body"] = payload["message"]["kapso"]["content"] = text
    payload["conversation"]["phone_number"] = phone
    payload["conversation"]["id"] = f"conv-{phone.lstrip('+')[-4:]}-kapso"
    payload["conversation"]["business_scoped_user_id"] = f"US.{phone.lstrip('+')[-4:]}bsuid8842"
    payload["conversation"]["kapso"].update(contact_name=name, last_message_text=text, last_message_id=wamid)
    return payload


def delivered(*, wamid: str, phone: str = PHONE) -> dict:
    payload = copy.deepcopy(fixture("whatsapp.message.delivered__text"))
    payload["message"]["id"] = wamid
    payload["message"]["kapso"]["statuses"][0].update(id=wamid, recipient_id=phone.lstrip("+"))
    payload["conversation"]["phone_number"] = phone
    return payload


@pytest.fixture
def conversation(connection, post_webhook, openai, kapso, agent):
    """A contact's whole life in the database: a signed inbound delivery, an agent turn with a tool
    call, the reply sent through Kapso and its delivered status; and another contact beside it."""
    agent.allowed_numbers = [PHONE]
    agent.save()
    assert (
        post_webhook("messages", inbound(wamid="wamid.zed.1"), secret="conn-secret", event=RECEIVED).status_code == 200
    )
    openai.reply_tool_call("whatsapp.getConversation", {"phone": PHONE})
    openai.reply_text(f"Thanks {NAME}, order 99118 is on its way to 7 Larch Lane.")
    thread = Thread.objects.get(contact_phone=PHONE)
    run_turn(str(AgentRun.objects.get(thread=thread).id))
    outbox_drain(str(thread.id))
    reply = Message.objects.get(thread=thread, direction="outbound")
    assert reply.status == "sent", reply.error_text
    post_webhook("messages", delivered(wamid=reply.wamid), secret="conn-secret", event="whatsapp.message.delivered")
    # Another contact, whose agent turn named this one in a tool call.
    post_webhook(
        "messages",
        inbound(wamid="wamid.other.1", phone=OTHER_PHONE, name="Other Person", text="hi"),
        secret="conn-secret",
        event=RECEIVED,
    )
    openai.reply_tool_call("whatsapp.getConversation", {"phone": PHONE})
    openai.reply_text("Hello!")
    other = Thread.objects.get(contact_phone=OTHER_PHONE)
    run_turn(str(AgentRun.objects.get(thread=other).id))
    return thread, other


def everywhere(needle: str) -> list[str]:
    """Every (table.column) of the database whose text, varchar, json or jsonb value contains `needle`."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'json', 'jsonb')"
        )
        columns = cursor.fetchall()
        found = []
        for table, column in columns:
            cursor.execute(f'SELECT 1 FROM "{table}" WHERE "{column}"::text LIKE %s LIMIT 1', [f"%{needle}%"])
            if cursor.fetchone():
                found.append(f"{table}.{column}")
    return found


def test_an_erased_thread_leaves_nothing_of_the_contact_in_any_table(api, org, conversation):
    thread, other = conversation
    needles = [PHONE.lstrip("+"), NAME, "99118", "Larch Lane", "wamid.zed.1", thread.kapso_conversation_id]
    assert thread.kapso_conversation_id == "conv-4321-kapso" and thread.contact_bsuid == "US.4321bsuid8842"
    needles.append(thread.contact_bsuid)
    assert all(everywhere(n) for n in needles if n)  # the search does find them before

    response = api.post(f"/api/v1/threads/{thread.id}/erase")

    assert response.status_code == 204
    assert api.get(f"/api/v1/threads/{thread.id}").status_code == 404
    assert {n: everywhere(n) for n in needles if n} == {n: [] for n in needles if n}
    [audit] = ThreadErasure.objects.all()
    assert (audit.org_id, audit.thread_ref, audit.erased_by) == (org.id, thread.id, audit.erased_by)
    assert audit.erased_by.startswith("API key ") and audit.message_count == 2
    # The other contact's conversation is still there.
    assert Thread.objects.filter(pk=other.pk).exists() and Message.objects.filter(thread=other).exists()


def test_export_has_every_message_status_reaction_tool_call_note_and_the_contact_record(
    api, conversation, post_webhook
):
    thread, _ = conversation
    reply = Message.objects.get(thread=thread, direction="outbound")
    reaction = copy.deepcopy(fixture("whatsapp.message.received__reaction"))
    reaction["message"]["reaction"]["message_id"] = reply.wamid
    reaction["message"]["timestamp"] = str(int(timezone.now().timestamp()))
    reaction["conversation"] = inbound(wamid=reply.wamid)["conversation"]  # the same contact, as Kapso sends it
    assert post_webhook("messages", reaction, secret="conn-secret", event=RECEIVED).status_code == 200
    Note.objects.create(org=thread.org, thread=thread, text="Prefers deliveries after 5 pm")
    Contact.objects.filter(phone=PHONE).update(attributes={"lead_status": "hot"})

    response = api.get(f"/api/v1/threads/{thread.id}/export")

    assert response.status_code == 200
    data = json_of(response)
    assert data["thread"]["contact_phone"] == PHONE and data["thread"]["opted_out"] is False
    assert [(m["direction"], m["status"]) for m in data["messages"]] == [
        ("inbound", "received"),
        ("outbound", "delivered"),
    ]
    assert data["messages"][0]["text"] == SECRET_TEXT
    [run] = data["agent_runs"]
    assert run["tool_calls"][0]["name"] == "whatsapp.getConversation"
    assert run["tool_calls"][0]["result"]["messages"][0]["text"] == SECRET_TEXT
    assert data["messages"][1]["reaction"] == "👍" and data["messages"][1]["reaction_at"]
    assert data["notes"] == [{"at": data["notes"][0]["at"], "text": "Prefers deliveries after 5 pm"}]
    assert data["contact"]["name"] == NAME and data["contact"]["attributes"] == {"lead_status": "hot"}
    assert data["thread"]["contact_bsuid"] == thread.contact_bsuid


def test_another_org_can_neither_export_nor_erase(other_org, conversation):
    from rest_framework.test import APIClient

    thread, _ = conversation
    outsider = APIClient()
    outsider.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(other_org)}")

    assert outsider.get(f"/api/v1/threads/{thread.id}/export").status_code == 404
    assert outsider.post(f"/api/v1/threads/{thread.id}/erase").status_code == 404
    assert Thread.objects.filter(pk=thread.pk).exists()


def test_retention_purges_raw_payloads_and_keeps_text_unless_told(connection, post_webhook, settings):
    post_webhook("messages", inbound(wamid="wamid.old.1"), secret="conn-secret", event=RECEIVED)
    later = timezone.now() + timedelta(days=31)

    done = retention_purge(now=later)

    assert done["webhook_bodies"] == 1 and done["message_payloads"] == 1
    assert WebhookEvent.objects.get().body == "" and Message.objects.get().raw == {}
    assert Message.objects.get().text == SECRET_TEXT
    settings.MESSAGE_RETENTION_DAYS = 30
    assert retention_purge(now=later)["messages"] == 1 and not Message.objects.exists()


# --- Opt-out ---------------------------------------------------------------------------------------


def test_stop_opts_out_once_and_start_opts_back_in(api, connection, post_webhook, kapso, settings):
    def say(text, n):
        post_webhook("messages", inbound(wamid=f"wamid.kw.{n}", text=text), secret="conn-secret", event=RECEIVED)

    say("Stop", 1)
    say("STOP!", 2)
    thread = Thread.objects.get()

    assert thread.opted_out and not AgentRun.objects.exists()
    confirmations = Message.objects.filter(direction="outbound")
    assert [m.text for m in confirmations] == [settings.OPT_OUT_CONFIRMATION] and confirmations[0].author == "system"
    assert json_of(api.get(f"/api/v1/threads/{thread.id}"))["opted_out"] is True
    # Nothing else reaches them: no agent turn for a question, no operator reply.
    say("what are your hours?", 3)
    assert not AgentRun.objects.exists()
    refused = api.post(f"/api/v1/threads/{thread.id}/messages", {"text": "Hello?"}, format="json")
    assert refused.status_code == 409 and "opted out" in json_of(refused)["error"]
    assert Message.objects.filter(direction="outbound").count() == 1

    say("arrêt", 4)  # French: already opted out, no second confirmation
    say("START", 5)
    thread.refresh_from_db()
    assert not thread.opted_out
    assert list(Message.objects.filter(direction="outbound").order_by("created_at").values_list("text", flat=True)) == [
        settings.OPT_OUT_CONFIRMATION,
        settings.OPT_IN_CONFIRMATION,
    ]
    say("what are your hours?", 6)
    assert AgentRun.objects.count() == 1


def test_a_keyword_inside_a_sentence_is_just_a_message(connection, post_webhook):
    post_webhook(
        "messages",
        inbound(wamid="wamid.s.1", text="please don't stop the delivery"),
        secret="conn-secret",
        event=RECEIVED,
    )

    assert not Thread.objects.get().opted_out and AgentRun.objects.count() == 1


def test_a_turn_already_queued_sends_nothing_after_stop(connection, post_webhook, agent):
    post_webhook("messages", inbound(wamid="wamid.q.1", text="hi"), secret="conn-secret", event=RECEIVED)
    run = AgentRun.objects.get()
    post_webhook("messages", inbound(wamid="wamid.q.2", text="STOP"), secret="conn-secret", event=RECEIVED)

    run_turn(str(run.id))

    assert Message.objects.filter(direction="outbound", author="agent").count() == 0
    assert AgentRun.objects.get().status == "skipped"


# --- Dashboard -------------------------------------------------------------------------------------


def test_an_admin_downloads_and_erases_a_thread_from_the_dashboard_and_an_operator_cannot(client, org, connection):
    from tests.factories import make_thread, make_user
    from tests.test_dashboard_support import org_url

    thread = make_thread(connection, phone=PHONE, contact_name=NAME)
    admin, operator = make_user(org, role="admin"), make_user(org, role="operator")

    client.force_login(operator)
    assert "Erase this conversation" not in client.get(org_url("thread", org, thread_id=thread.pk)).content.decode()
    assert client.post(org_url("thread-erase", org, thread_id=thread.pk)).status_code == 403
    client.force_login(admin)
    page = client.get(org_url("thread", org, thread_id=thread.pk)).content.decode()
    download = client.get(org_url("thread-export", org, thread_id=thread.pk))
    erased = client.post(org_url("thread-erase", org, thread_id=thread.pk), follow=True)

    assert "Erase this conversation" in page and "Download everything" in page
    assert download["Content-Disposition"].startswith("attachment") and json_of(download)["thread"]["contact_phone"]
    assert "was erased" in erased.content.decode() and not Thread.objects.filter(pk=thread.pk).exists()
    assert ThreadErasure.objects.get().erased_by == admin.email


def test_the_thread_page_says_the_contact_opted_out(client, org, connection):
    from tests.factories import make_thread, make_user
    from tests.test_dashboard_support import org_url

    thread = make_thread(connection, phone=PHONE, opted_out_at=timezone.now(), last_inbound_at=timezone.now())
    client.force_login(make_user(org, role="operator"))

    page = client.get(org_url("thread", org, thread_id=thread.pk)).content.decode()

    assert "Opted out (wrote STOP)" in page and "they wrote STOP" in page


def test_erasing_a_contact_keeps_the_other_contacts_parts_of_a_batched_delivery(api, connection, post_webhook):
    def item(phone: str, wamid: str, text: str) -> dict:
        single = inbound(wamid=wamid, phone=phone, name=f"Name {phone[-4:]}", text=text)
        return {key: single[key] for key in ("message", "conversation", "is_new_conversation", "phone_number_id")}

    batch = copy.deepcopy(fixture("whatsapp.message.received__batch"))
    batch["data"] = [item(PHONE, "wamid.zed.b1", SECRET_TEXT), item(OTHER_PHONE, "wamid.other.b1", "keep me"),
                     item(PHONE, "wamid.zed.b2", "second secret")]
    batch["batch_info"]["size"] = 3
    headers = {"X-Webhook-Batch": "true", "X-Batch-Size": "3"}
    assert post_webhook("messages", batch, secret="conn-secret", event=RECEIVED, headers=headers).status_code == 200
    thread = Thread.objects.get(contact_phone=PHONE)

    assert api.post(f"/api/v1/threads/{thread.id}/erase").status_code == 204

    event = WebhookEvent.objects.get()
    kept = json.loads(event.body)
    assert [i["message"]["id"] for i in kept["data"]] == ["wamid.other.b1"] and kept["batch_info"]["size"] == 1
    assert event.headers  # the delivery's headers name no contact: they stay
    for needle in (PHONE.lstrip("+"), SECRET_TEXT, "second secret", "wamid.zed.b1", "conv-4321-kapso"):
        assert everywhere(needle) == [], needle
    assert Message.objects.filter(thread__contact_phone=OTHER_PHONE, text="keep me").exists()
