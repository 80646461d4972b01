from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations import services
from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from tests.factories import make_thread
from tests.fakes.kapso_server import fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(connection):
    return make_thread(connection)


def queue(thread, text="Hello!"):
    return services.outbound_queue(thread=thread, text=text, author="agent")


def test_a_queued_reply_is_posted_to_kapso_and_marked_sent(kapso, thread):
    [message] = queue(thread)

    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert message.status == "sent" and message.wamid == "wamid.fake.000001"
    [request] = kapso.requests_to("POST", r"/meta/whatsapp/v24.0/123456789012345/messages$")
    assert request["headers"]["X-API-Key"] == "test-kapso-key"
    assert request["body"] == {"messaging_product": "whatsapp", "recipient_type": "individual",
                               "to": "15551234567", "type": "text", "text": {"body": "Hello!", "preview_url": False}}


def test_a_long_reply_is_split_and_sent_in_order(kapso, thread):
    text = " ".join(f"Sentence number {i} is here." for i in range(400))  # ~11 KB

    messages = queue(thread, text)
    outbox_drain(str(thread.id))

    assert len(messages) == 3
    assert [s["text"]["body"] for s in kapso.sent] == [m.text for m in messages]
    assert all(len(s["text"]["body"]) <= 4096 for s in kapso.sent)


def test_a_sent_message_is_never_sent_again(kapso, thread):
    queue(thread)
    outbox_drain(str(thread.id))
    outbox_drain(str(thread.id))

    assert len(kapso.sent) == 1


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (500, {"error": "Internal error"}, {}),
        (429, fixture("api__rate_limited_429"), {"Retry-After": "7"}),
        (409, fixture("api__send_error_409_in_flight"), {}),
        (400, fixture("api__send_error_130429"), {}),
    ],
)
def test_a_transient_failure_is_retried_later_with_backoff(kapso, thread, status, body, headers):
    kapso.fail_next_send(status, body, headers)
    [message] = queue(thread)

    outbox_drain(str(thread.id))

    message.refresh_from_db()
    # A 429 is Kapso's per-key limit, not the message's fault: it costs no attempt.
    assert message.status == "queued" and message.send_attempts == (0 if status == 429 else 1)
    assert message.next_attempt_at > timezone.now() - timedelta(seconds=1)
    if headers.get("Retry-After"):
        assert message.next_attempt_at >= timezone.now() + timedelta(seconds=5)
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())

    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert message.status == "sent" and len(kapso.sent) == 1


def test_a_message_outside_the_window_fails_without_retry(kapso, thread):
    kapso.fail_next_send(422, fixture("api__send_error_131047"))
    [message] = queue(thread)

    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert message.status == "failed" and message.error_code == "131047"
    assert "24-hour window" in message.error_text
    assert len(kapso.requests_to("POST", "/messages$")) == 1


def test_transient_failures_give_up_after_the_last_attempt(kapso, thread, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    kapso.fail_next_send(500, {"error": "boom"}, times=2)
    [message] = queue(thread)

    for _ in range(2):
        outbox_drain(str(thread.id))
        Message.objects.filter(pk=message.pk, status="queued").update(next_attempt_at=None)

    message.refresh_from_db()
    assert message.status == "failed" and message.send_attempts == 2


def test_a_later_reply_waits_for_an_earlier_one_that_is_retrying(kapso, thread):
    kapso.fail_next_send(500, {"error": "boom"})
    first, second = queue(thread, "first")[0], queue(thread, "second")[0]

    outbox_drain(str(thread.id))

    second.refresh_from_db()
    assert second.status == "queued" and kapso.sent == []
    Message.objects.filter(pk=first.pk).update(next_attempt_at=None)
    outbox_drain(str(thread.id))
    assert [s["text"]["body"] for s in kapso.sent] == ["first", "second"]


def test_only_one_send_per_thread_is_in_flight(kapso, thread):
    first = queue(thread, "first")[0]
    queue(thread, "second")
    Message.objects.filter(pk=first.pk).update(status="sending", sending_started_at=timezone.now())

    claimed, _ = services.outbox_claim_next(thread_id=thread.id)

    assert claimed is None


def test_a_stale_send_that_kapso_has_is_recorded_not_sent_again(kapso, thread):
    [message] = queue(thread, "Already out")
    started = timezone.now() - timedelta(minutes=5)
    Message.objects.filter(pk=message.pk).update(status="sending", sending_started_at=started)
    kapso.history.append({"id": "wamid.kapso-has-it", "to": "15551234567", "type": "text",
                          "text": {"body": "Already out"}, "kapso": {"direction": "outbound"}})

    services.outbox_recover_stale(older_than=timedelta(seconds=30))

    message.refresh_from_db()
    assert (message.status, message.wamid) == ("sent", "wamid.kapso-has-it")
    assert kapso.sent == []


def test_a_stale_send_that_kapso_lacks_is_queued_again_and_sent_once(kapso, thread):
    [message] = queue(thread, "Lost")
    five_minutes_ago = timezone.now() - timedelta(minutes=5)
    Message.objects.filter(pk=message.pk).update(status="sending", sending_started_at=five_minutes_ago)

    thread_ids = services.outbox_recover_stale(older_than=timedelta(seconds=0))
    outbox_drain(str(thread.id))

    assert thread.id in thread_ids
    message.refresh_from_db()
    assert message.status == "sent" and len(kapso.sent) == 1


def test_a_send_to_a_disconnected_number_fails_with_a_reason(kapso, thread, connection):
    connection.status = "disconnected"
    connection.save()
    [message] = queue(thread)

    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert message.status == "failed" and "not connected" in message.error_text
    assert kapso.sent == []


def test_the_parts_of_a_split_reply_are_stored_in_order(thread):
    messages = queue(thread, "Part. " * 2000)

    stored = list(Message.objects.filter(thread=thread).order_by("created_at", "id"))
    assert [m.id for m in stored] == [m.id for m in messages]
    assert len({m.created_at for m in stored}) == len(stored)


def test_a_stale_send_is_matched_to_the_copy_no_other_message_claims(kapso, thread):
    earlier = queue(thread, "Same words")[0]
    Message.objects.filter(pk=earlier.pk).update(status="sent", wamid="wamid.earlier")
    [message] = queue(thread, "Same words")
    five_minutes_ago = timezone.now() - timedelta(minutes=5)
    Message.objects.filter(pk=message.pk).update(status="sending", sending_started_at=five_minutes_ago)
    for wamid in ("wamid.earlier", "wamid.this-one"):  # Kapso lists newest first; either order must work
        kapso.history.insert(0, {"id": wamid, "to": "15551234567", "type": "text", "text": {"body": "Same words"}})

    services.outbox_recover_stale(older_than=timedelta(seconds=30))

    message.refresh_from_db()
    assert (message.status, message.wamid) == ("sent", "wamid.this-one")
