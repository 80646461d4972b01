"""Real Kapso traffic beyond the documented samples: contacts known only by a business-scoped user id,
history imports, outbound echoes, reactions, messages sent outside Switchboard, unreadable
deliveries and disconnected numbers. Payloads are shaped as Kapso documents them."""

import pytest

from apps.agents.models import AgentRun
from apps.conversations.models import Message, Thread
from apps.conversations.tasks import message_status_retry, outbox_drain
from apps.kapso.payloads import parse_status
from apps.webhooks.models import WebhookEvent
from apps.whatsapp.models import ConnectionStatus
from tests.conftest import json_of
from tests.factories import make_connection, make_thread

pytestmark = pytest.mark.django_db

RECEIVED = "whatsapp.message.received"
BSUID = "US.13491208655302741918"


def deliver(post_webhook, payload, event=RECEIVED, secret="conn-secret"):
    return post_webhook("messages", payload, secret=secret, event=event)


# --- 1. Contacts known only by a BSUID ---------------------------------------------------------


def test_a_contact_with_a_username_and_no_number_is_stored_and_answered(connection, post_webhook, kapso_payload):
    response = deliver(post_webhook, kapso_payload("whatsapp.message.received__bsuid_only"))

    assert response.status_code == 200 and json_of(response) == {"status": "processed"}
    thread = Thread.objects.get()
    assert thread.external_id == f"whatsapp:{BSUID}"
    assert (thread.contact_phone, thread.contact_bsuid, thread.contact_username) == (None, BSUID, "@jane")
    assert Message.objects.get().text == "Hi, do you ship to Canada?"
    assert AgentRun.objects.get().status == "pending"


def test_a_reply_to_a_bsuid_contact_goes_to_recipient_not_to(kapso, connection):
    thread = Thread.objects.create(org=connection.org, connection=connection, external_id=f"whatsapp:{BSUID}",
                                   contact_phone=None, contact_bsuid=BSUID, contact_username="@jane")
    from apps.conversations.services import outbound_queue

    outbound_queue(thread=thread, text="Yes, we do!", author="agent")
    outbox_drain(str(thread.id))

    [send] = kapso.sent
    assert send["recipient"] == BSUID and "to" not in send
    assert Message.objects.get().status == "sent"


def test_a_thread_that_learns_the_number_later_stays_one_thread(connection, post_webhook, kapso_payload):
    deliver(post_webhook, kapso_payload("whatsapp.message.received__bsuid_only"))
    both = kapso_payload("whatsapp.message.received__text")  # the same user, now with number and BSUID
    both["conversation"]["business_scoped_user_id"] = BSUID
    deliver(post_webhook, both)
    number_only = kapso_payload("whatsapp.message.received__text")
    number_only["message"]["id"] = "wamid.NUMBER.ONLY"
    deliver(post_webhook, number_only)

    thread = Thread.objects.get()
    assert thread.external_id == f"whatsapp:{BSUID}"  # never changes
    assert (thread.contact_phone, thread.contact_bsuid) == ("+15551234567", BSUID)
    assert thread.messages.count() == 3


def test_a_bsuid_is_matched_before_the_number(connection, post_webhook, kapso_payload):
    by_number = make_thread(connection, phone="+15550000001")
    by_bsuid = Thread.objects.create(org=connection.org, connection=connection, external_id=f"whatsapp:{BSUID}",
                                     contact_bsuid=BSUID)
    payload = kapso_payload("whatsapp.message.received__bsuid_only")
    payload["conversation"]["phone_number"] = "+15550000001"

    deliver(post_webhook, payload)

    assert Message.objects.get().thread_id == by_bsuid.id
    assert Thread.objects.get(pk=by_number.pk).messages.count() == 0


def test_a_batch_mixing_a_bsuid_contact_with_ordinary_ones_is_stored_whole(connection, post_webhook, kapso_payload):
    batch = kapso_payload("whatsapp.message.received__batch")
    bsuid_item = kapso_payload("whatsapp.message.received__bsuid_only")
    batch["data"].append(bsuid_item)

    response = post_webhook("messages", batch, secret="conn-secret", event=RECEIVED,
                            headers={"X-Webhook-Batch": "true", "X-Batch-Size": str(len(batch["data"]))})

    assert response.status_code == 200
    assert Message.objects.count() == len(batch["data"]) and Thread.objects.count() == 2
    assert Thread.objects.filter(contact_bsuid=BSUID, contact_phone__isnull=True).exists()


def test_the_api_shows_a_bsuid_contact(api, connection, post_webhook, kapso_payload):
    deliver(post_webhook, kapso_payload("whatsapp.message.received__bsuid_only"))

    [thread] = json_of(api.get("/api/v1/threads"))["results"]

    assert (thread["contact_phone"], thread["contact_bsuid"], thread["contact_username"]) == (None, BSUID, "@jane")
    assert thread["external_id"] == f"whatsapp:{BSUID}"


def test_the_inbox_shows_the_username_where_there_is_no_number(client, org, connection, post_webhook, kapso_payload):
    from tests.factories import make_user

    payload = kapso_payload("whatsapp.message.received__bsuid_only")
    payload["conversation"]["kapso"]["contact_name"] = ""
    deliver(post_webhook, payload)
    client.force_login(make_user(org))
    thread = Thread.objects.get()

    inbox = client.get(f"/o/{org.slug}/inbox/")
    page = client.get(f"/o/{org.slug}/threads/{thread.pk}/")

    assert "@jane" in inbox.content.decode()
    assert "@jane" in page.content.decode() and "No number shared" in page.content.decode()


# --- 2. Deliveries that start no turn --------------------------------------------------------------


def test_history_import_is_stored_in_its_original_order_and_never_answered(connection, post_webhook, kapso_payload):
    newer = kapso_payload("whatsapp.message.received__history_sync")
    older = kapso_payload("whatsapp.message.received__history_sync")
    older["message"].update(id="wamid.HISTORY.0000", timestamp="1728990000", text={"body": "Hello?"})
    deliver(post_webhook, newer)
    deliver(post_webhook, older)  # imported out of order

    assert [m.text for m in Thread.objects.get().messages.all()] == ["Hello?", "Is the shop open on Sunday?"]
    assert not AgentRun.objects.exists()


def test_a_received_event_with_outbound_direction_is_not_the_contacts_message(connection, post_webhook, kapso_payload):
    deliver(post_webhook, kapso_payload("whatsapp.message.received__outbound_direction"))

    message = Message.objects.get()
    assert (message.direction, message.author) == ("outbound", "external")
    assert not AgentRun.objects.exists()


def test_a_reaction_attaches_to_its_message_and_starts_no_turn(connection, post_webhook, kapso_payload):
    thread = make_thread(connection)
    target = Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="outbound",
                                    author="agent", text="Your order shipped", wamid="wamid.456", status="delivered")

    deliver(post_webhook, kapso_payload("whatsapp.message.received__reaction"))

    target.refresh_from_db()
    assert target.reaction == "\U0001f44d"
    assert Message.objects.count() == 1  # no "[Reaction …]" message
    assert not AgentRun.objects.exists()


def test_an_empty_emoji_removes_the_reaction_and_an_older_one_does_not_come_back(
    connection, post_webhook, kapso_payload
):
    thread = make_thread(connection)
    target = Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="inbound",
                                    author="contact", text="hi", wamid="wamid.456", status="received")
    removal = kapso_payload("whatsapp.message.received__reaction")
    removal["message"].update(id="wamid.REACTION.0002", timestamp="1730092900")
    removal["message"]["reaction"]["emoji"] = ""

    deliver(post_webhook, removal)
    deliver(post_webhook, kapso_payload("whatsapp.message.received__reaction"))  # older, arrives late

    target.refresh_from_db()
    assert target.reaction == ""


def test_the_thread_shows_a_reaction_on_its_bubble(client, org, connection, post_webhook, kapso_payload):
    from tests.factories import make_user

    thread = make_thread(connection)
    Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="outbound",
                           author="agent", text="Your order shipped", wamid="wamid.456", status="delivered")
    deliver(post_webhook, kapso_payload("whatsapp.message.received__reaction"))
    client.force_login(make_user(org))

    page = client.get(f"/o/{org.slug}/threads/{thread.pk}/").content.decode()

    assert 'class="reaction"' in page and "\U0001f44d" in page


# --- 3. Outbound messages Switchboard did not send ---------------------------------------------------


def test_a_message_typed_in_kapsos_inbox_is_recorded_as_sent_outside_switchboard(
    connection, post_webhook, kapso_payload
):
    deliver(post_webhook, kapso_payload("whatsapp.message.sent__kapso_inbox"), event="whatsapp.message.sent")

    message = Message.objects.get()
    assert (message.direction, message.author, message.status) == ("outbound", "external", "sent")
    assert message.text == "Hi John, this is Maria from the Kapso inbox."
    assert message.thread.handoff == "agent"  # only origin business_app means a person took over


def test_later_statuses_apply_to_a_message_sent_outside_switchboard(connection, post_webhook, kapso_payload):
    sent = kapso_payload("whatsapp.message.sent__kapso_inbox")
    read = kapso_payload("whatsapp.message.read__text")
    read["message"]["id"] = sent["message"]["id"]
    deliver(post_webhook, sent, event="whatsapp.message.sent")
    deliver(post_webhook, read, event="whatsapp.message.read")

    assert Message.objects.get().status == "read"


def test_a_message_sent_outside_switchboard_is_in_the_agents_history(connection, post_webhook, kapso_payload):
    from apps.conversations.selectors import history_for_turn

    deliver(post_webhook, kapso_payload("whatsapp.message.sent__kapso_inbox"), event="whatsapp.message.sent")

    history = history_for_turn(thread=Thread.objects.get(), run_id=None, window=10)
    assert [m.text for m in history] == ["Hi John, this is Maria from the Kapso inbox."]


def test_a_status_that_overtakes_our_own_send_is_not_mistaken_for_an_outside_message(
    connection, kapso_payload, django_capture_on_commit_callbacks
):
    """Our send is in flight (no wamid stored yet) when Kapso's `sent` arrives: it waits for us."""
    thread = make_thread(connection)
    ours = Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="outbound",
                                  author="agent", text="On my way", status="sending")
    from apps.conversations.services import message_status_apply

    update = parse_status("whatsapp.message.sent", kapso_payload("whatsapp.message.sent__kapso_inbox"))
    assert message_status_apply(connection=connection, update=update) == "unknown"

    Message.objects.filter(pk=ours.pk).update(status="sent", wamid=update.wamid)
    message_status_retry(str(connection.id), update.to_json())
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the outbox runs in autocommit, as in its worker
def test_our_send_takes_over_a_copy_recorded_as_outside_when_its_answer_came_last(kapso, connection):
    """The status webhook won the race and its retries ran out: the copy gives way to our row."""
    from apps.conversations.services import outbound_queue

    thread = make_thread(connection)
    [ours] = outbound_queue(thread=thread, text="Hello!", author="agent")
    Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="outbound",
                           author="external", text="Hello!", wamid="wamid.fake.000001", status="delivered")

    outbox_drain(str(thread.id))

    ours.refresh_from_db()
    assert (ours.status, ours.wamid) == ("sent", "wamid.fake.000001")
    assert Message.objects.count() == 1


# --- 5. A failed status keeps Meta's details --------------------------------------------------------


def test_a_failed_status_keeps_metas_error_details(connection, post_webhook, kapso_payload):
    payload = kapso_payload("whatsapp.message.failed__131026_details")
    thread = make_thread(connection)
    Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="outbound",
                           author="agent", text="x", wamid=payload["message"]["id"], status="sent")

    deliver(post_webhook, payload, event="whatsapp.message.failed")

    message = Message.objects.get()
    assert message.status == "failed" and message.error_code == "131026"
    assert "not a WhatsApp phone number" in message.error_text


# --- 10. Unreadable deliveries and disconnected numbers ---------------------------------------------


def test_a_signed_delivery_we_cannot_read_is_stored_as_failed_and_answered_200(connection, post_webhook):
    payload = {"message": {"id": ["not", "a", "wamid"]}, "phone_number_id": connection.phone_number_id}

    response = deliver(post_webhook, payload)

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.result == "failed" and "message.id" in event.detail


def test_an_unreadable_delivery_can_be_reprocessed(connection, post_webhook, kapso_payload):
    from apps.webhooks.services import event_reprocess

    payload = kapso_payload("whatsapp.message.received__text")
    payload["conversation"]["phone_number"] = None
    deliver(post_webhook, payload)
    event = WebhookEvent.objects.get()
    assert event.result == "failed"

    assert event_reprocess(event=event) == "failed"  # still unreadable: nothing half-stored
    assert not Message.objects.exists()


def test_bad_signatures_stay_401_and_oversized_bodies_413(connection, post_webhook, settings):
    payload = {"message": {"id": 1}, "phone_number_id": connection.phone_number_id}
    assert deliver(post_webhook, payload, secret="wrong").status_code == 401
    settings.WEBHOOK_MAX_BODY_BYTES = 10
    assert deliver(post_webhook, payload).status_code == 413
    assert not WebhookEvent.objects.exists()


def test_a_delivery_for_a_disconnected_number_is_stored_and_starts_no_turn(org, agent, post_webhook, kapso_payload):
    make_connection(org, agent=agent, phone_number_id="123456789012345", status=ConnectionStatus.DISCONNECTED)

    response = deliver(post_webhook, kapso_payload("whatsapp.message.received__text"))

    assert response.status_code == 200
    assert Message.objects.count() == 1
    assert not AgentRun.objects.exists()
