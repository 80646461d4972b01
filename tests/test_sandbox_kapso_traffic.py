# ruff: noqa: F811 - pytest fixtures imported from tests/test_sandbox_switchboard.py
"""The sandbox produces the real traffic of issue 9 — a username contact without a number, a history
import, reactions, a reply typed in Kapso's inbox, 402/409/422 answers, rate-limit headers, removing
and re-adding a number, an outage in which Kapso gives up — and Switchboard, unchanged, handles each."""

import pytest

from apps.agents.models import AgentRun
from apps.agents.tasks import run_turn
from apps.conversations.models import Message, Thread
from apps.conversations.tasks import outbox_drain
from apps.kapso import client as kapso
from apps.kapso.errors import KapsoError
from apps.webhooks.catchup import connection_catch_up
from apps.webhooks.models import WebhookEvent
from apps.webhooks.tasks import project_event_process
from apps.whatsapp.models import WhatsAppConnection
from sandbox import services
from sandbox.models import Delivery, FailureKind, PhoneNumber
from sandbox.payloads import bsuid_of

# The sandbox fixtures (`queue`, `connected`) of Switchboard-against-the-sandbox, shared.
from tests.test_sandbox_switchboard import CONTACT, connected, queue  # noqa: F401, F811

pytestmark = [pytest.mark.django_db(transaction=True)]


def number_of(connection) -> PhoneNumber:
    return PhoneNumber.objects.get(phone_number_id=connection.phone_number_id)


def test_a_username_contact_without_a_number_is_answered_through_recipient(connected, queue):
    services.contact_message_receive(number=number_of(connected), contact=CONTACT, name="Jane", text="Hi!",
                                     username="@jane")
    queue.run()

    thread = Thread.objects.get()
    assert (thread.contact_phone, thread.contact_bsuid, thread.contact_username) == (None, bsuid_of(CONTACT), "@jane")
    run_turn(str(AgentRun.objects.get().id))
    outbox_drain(str(thread.id))
    reply = Message.objects.get(direction="outbound")
    assert reply.status == "sent"  # the sandbox took `recipient` (the BSUID) and found the contact
    sent = number_of(connected).messages.get(direction="outbound")
    assert sent.wamid == reply.wamid and sent.conversation.contact_phone == CONTACT


def test_a_history_import_is_stored_in_order_and_not_answered(connected, queue):
    services.history_import(number=number_of(connected), contact=CONTACT, name="Alex")
    queue.run()

    assert list(Message.objects.values_list("text", flat=True)) == services.HISTORY_SAMPLE
    assert not AgentRun.objects.exists()


def test_a_reply_from_kapsos_inbox_and_the_contacts_reaction_reach_the_thread(connected, queue):
    number = number_of(connected)
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="hi")
    services.business_app_message_send(number=number, contact=CONTACT, text="Hello from Maria", origin="cloud_api")
    queue.run()
    outside = Message.objects.get(author="external")
    assert outside.text == "Hello from Maria" and outside.thread.handoff == "agent"

    services.contact_reacts(number=number, contact=CONTACT, name="Alex", emoji="\U0001f44d")
    queue.run()

    outside.refresh_from_db()
    assert outside.reaction == "\U0001f44d"
    assert AgentRun.objects.count() == 1  # the first message's turn only; the reaction starts none


@pytest.mark.parametrize(("kind", "status", "code"), [
    (FailureKind.NO_CREDITS, 402, "insufficient_credits"),
    (FailureKind.MARKETING_STOPPED, 422, "marketing_preference_stopped"),
    (FailureKind.ACCOUNT_MISMATCH, 422, "messaging_account_mismatch"),
])
def test_the_sandboxs_402_and_422_answers_are_permanent_errors(connected, queue, kind, status, code):
    number = number_of(connected)
    services.contact_message_receive(number=number, contact=CONTACT, name="", text="hi")
    services.failure_arm(number=number, kind=kind, count=1)

    with pytest.raises(KapsoError) as caught:
        kapso.send_text(phone_number_id=number.phone_number_id, to=CONTACT, body="x")

    assert (caught.value.status, caught.value.code, caught.value.transient) == (status, code, False)


def test_every_answer_carries_rate_limit_headers_and_the_plan_limit_gives_429(queue, client, settings):
    settings.KAPSO_SANDBOX_RATE_LIMIT_PER_MINUTE = 3
    key = {"HTTP_X_API_KEY": "rate-limit-test-key"}

    answers = [client.get("/sandbox/platform/v1/customers", **key) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0]["X-RateLimit-Limit"] == "3" and int(answers[0]["X-RateLimit-Reset"]) > 0
    assert int(answers[3]["Retry-After"]) >= 1


def test_removing_and_re_adding_the_number_gives_switchboard_a_new_webhook(connected, queue):
    number = number_of(connected)
    old_secret = connected.webhook_secret

    services.phone_number_readd(number=number)
    queue.run()
    for event in WebhookEvent.objects.filter(event__startswith="whatsapp.phone_number.").order_by("created_at")[1:]:
        project_event_process(str(event.id))

    connection = WhatsAppConnection.objects.get(pk=connected.pk)
    assert connection.status == "connected" and connection.webhook_secret != old_secret
    [hook] = number.webhooks.all()
    assert hook.secret_key == connection.webhook_secret
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="still there?")
    queue.run()
    assert Message.objects.get().text == "still there?"  # signed with the new secret, accepted


def test_in_an_outage_kapso_gives_up_and_switchboard_catches_up(connected, queue, settings):
    settings.KAPSO_SANDBOX_RETRY_DELAYS = "0,0"
    number = number_of(connected)
    services.outage_start(number=number, minutes=5)

    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="anyone?")
    queue.run()

    [given_up] = Delivery.objects.filter(event="whatsapp.message.received")
    assert (given_up.status, given_up.attempt_count) == ("failed", 3)
    assert not Message.objects.exists()
    services.outage_start(number=number, minutes=0)
    result = connection_catch_up(connection=connected)  # Switchboard asks the sandbox's history
    assert (result.found, result.answered) == (1, 1)
    assert Message.objects.get().text == "anyone?"


def test_a_photo_without_media_url_is_fetched_through_the_media_lookup(connected, queue, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    from apps.conversations.media import media_open, media_store

    services.contact_photo_receive(number=number_of(connected), contact=CONTACT, name="Alex", caption="Broken lamp")
    queue.run()
    message = Message.objects.get()
    assert message.type == "image" and "url" not in message.media and message.media["id"]

    media_store(message_id=message.id)  # the media task's work: GET /{media_id}?phone_number_id=, then download_url

    message.refresh_from_db()
    assert message.media_status == "stored"
    with media_open(message) as stored:
        assert stored.read() == services.PHOTO_PNG
