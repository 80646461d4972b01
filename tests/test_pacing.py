import time

import pytest

from apps.conversations import pacing, services
from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from tests.factories import make_thread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paced(settings):
    settings.OUTBOX_MAX_PER_SECOND_PER_NUMBER = 5
    settings.OUTBOX_MIN_GAP_PER_CONTACT_SECONDS = 0.5
    return settings


def test_two_sends_to_one_contact_are_kept_apart_by_the_gap(paced, connection):
    thread = make_thread(connection)

    assert pacing.reserve(connection_id=connection.id, thread_id=thread.id) == 0
    wait = pacing.reserve(connection_id=connection.id, thread_id=thread.id)

    assert 0.3 < wait <= 0.5


def test_a_number_sends_no_faster_than_its_limit_across_contacts(paced, connection):
    first, second = make_thread(connection, "+15550000001"), make_thread(connection, "+15550000002")

    assert pacing.reserve(connection_id=connection.id, thread_id=first.id) == 0
    wait = pacing.reserve(connection_id=connection.id, thread_id=second.id)

    assert 0.1 < wait <= 0.2


def test_a_paced_reply_is_postponed_not_sent_early(paced, connection, kapso):
    thread = make_thread(connection)
    first, second = services.outbound_queue(thread=thread, text="A. " * 1500 + "B. " * 1500, author="agent")[:2]

    outbox_drain(str(thread.id))

    second.refresh_from_db()
    assert len(kapso.sent) == 1
    assert second.status == "queued" and second.send_attempts == 0 and second.next_attempt_at is not None
    time.sleep(0.55)
    outbox_drain(str(thread.id))
    assert len(kapso.sent) == 2
    gap = kapso.requests_to("POST", "/messages$")[1]["at"] - kapso.requests_to("POST", "/messages$")[0]["at"]
    assert gap >= 0.45


def test_pacing_fails_open_when_redis_is_unreachable(paced, connection):
    paced.REDIS_URL = "redis://127.0.0.1:1/0"  # restored by pytest-django after the test
    pacing._script.cache_clear()
    try:
        thread = make_thread(connection)
        assert pacing.reserve(connection_id=connection.id, thread_id=thread.id) == 0
        assert pacing.reserve(connection_id=connection.id, thread_id=thread.id) == 0
    finally:
        pacing._script.cache_clear()
    assert Message.objects.count() == 0
