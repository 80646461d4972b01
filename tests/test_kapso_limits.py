"""Kapso's errors per API, its per-key rate limit, and sends whose outcome is unknown (against the local
Kapso stand-in, with the error bodies Kapso documents)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations import services
from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from apps.kapso import client, ratelimit
from apps.kapso.errors import PLATFORM, error_from_response
from tests.factories import make_thread
from tests.fakes.kapso_server import fixture

# --- 5. Errors classified per API ------------------------------------------------------------------


@pytest.mark.parametrize("body", [fixture("api__send_error_409_in_flight"),
                                  fixture("api__send_error_409_in_flight_object")])
def test_a_meta_proxy_409_in_either_documented_form_is_retried(body):
    error = error_from_response(409, body)

    assert error.transient and "in-flight" in error.message


def test_a_platform_api_409_is_a_permanent_conflict_with_its_reason():
    error = error_from_response(409, fixture("api__platform_conflict_409"), api=PLATFORM)

    assert not error.transient and error.message == "Phone number limit reached for this customer"


def test_insufficient_credits_is_permanent_and_carries_the_billing_link():
    error = error_from_response(402, fixture("api__insufficient_credits_402"))

    assert not error.transient and error.code == "insufficient_credits"
    assert "https://app.kapso.ai/projects/990e8400-e29b-41d4-a716-446655440004/billing" in error.message


@pytest.mark.parametrize("name", ["api__marketing_preference_stopped_422", "api__messaging_account_mismatch_422"])
def test_422_string_codes_are_permanent(name):
    error = error_from_response(422, fixture(name))

    assert not error.transient and error.code == fixture(name)["code"]


@pytest.mark.django_db(transaction=True)
def test_a_402_fails_the_message_at_once_and_the_thread_links_the_kapso_billing_page(kapso, connection, client, org):
    from tests.factories import make_user

    thread = make_thread(connection)
    kapso.fail_next_send(402, fixture("api__insufficient_credits_402"))
    [message] = services.outbound_queue(thread=thread, text="Hello!", author="agent")

    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert (message.status, message.error_code, message.send_attempts) == ("failed", "insufficient_credits", 1)
    client.force_login(make_user(org))
    page = client.get(f"/o/{org.slug}/threads/{thread.pk}/").content.decode()
    assert "Kapso balance" in page
    assert 'href="https://app.kapso.ai/projects/990e8400-e29b-41d4-a716-446655440004/billing"' in page


@pytest.mark.django_db(transaction=True)
def test_a_meta_proxy_409_is_sent_again_after_a_short_wait(kapso, connection):
    thread = make_thread(connection)
    kapso.fail_next_send(409, fixture("api__send_error_409_in_flight_object"))
    [message] = services.outbound_queue(thread=thread, text="Hello!", author="agent")

    outbox_drain(str(thread.id))
    message.refresh_from_db()
    assert message.status == "queued"
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert message.status == "sent" and len(kapso.sent) == 1


# --- 6. Kapso's per-key rate limit ------------------------------------------------------------------


@pytest.fixture
def limiter(settings):
    settings.KAPSO_RATE_LIMIT_PER_MINUTE = 100
    settings.KAPSO_RATE_LIMIT_WINDOW_SECONDS = 60.0
    key = f"test-key-{timezone.now().timestamp()}"  # a fresh limiter per test
    yield key
    ratelimit._client().delete(*ratelimit._keys(key))


def test_the_limiter_never_allows_more_than_the_plan_in_a_minute(limiter):
    granted = sum(1 for _ in range(150) if ratelimit.acquire(limiter, max_wait=0) == 0)

    assert 0 < granted <= 100


def test_the_limiter_is_shared_and_says_how_long_to_wait(limiter):
    while ratelimit.acquire(limiter, max_wait=0) == 0:
        pass

    wait = ratelimit.acquire(limiter, max_wait=0)

    assert 0 < wait <= 2 * 60 / (100 * 0.9) + 0.01  # about the next slot (with jitter), not the next minute


def test_a_nearly_spent_budget_holds_every_worker_back_until_the_reset(limiter):
    ratelimit.observe(limiter, 200, {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "1",
                                     "X-RateLimit-Reset": "30"})

    assert 25 < ratelimit.acquire(limiter) <= 30 + 15


def test_a_429_holds_every_worker_back_for_its_retry_after(limiter):
    ratelimit.observe(limiter, 429, {"Retry-After": "12"})

    assert 10 < ratelimit.acquire(limiter) <= 12 + 12


def test_a_unix_time_reset_is_understood(limiter):
    reset = int(timezone.now().timestamp()) + 20
    ratelimit.observe(limiter, 200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})

    assert 15 < ratelimit.acquire(limiter) <= 21 + 15


@pytest.mark.django_db(transaction=True)
def test_a_429_defers_the_send_without_using_one_of_its_attempts(kapso, connection, settings):
    thread = make_thread(connection)
    [message] = services.outbound_queue(thread=thread, text="Hello!", author="agent")
    for _ in range(settings.OUTBOX_MAX_ATTEMPTS + 2):  # more 429s than the message has attempts
        kapso.fail_next_send(429, fixture("api__rate_limited_429"), {"Retry-After": "1"})
        outbox_drain(str(thread.id))
        Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert message.status == "sent" and message.send_attempts == 1


@pytest.mark.django_db(transaction=True)
def test_the_limiter_defers_a_send_before_kapso_refuses_it(kapso, connection, limiter, settings):
    settings.KAPSO_API_KEY = limiter
    kapso.api_key = limiter
    ratelimit.pause_for(limiter, 5)
    thread = make_thread(connection)
    [message] = services.outbound_queue(thread=thread, text="Hello!", author="agent")

    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert (message.status, message.send_attempts) == ("queued", 0)
    assert message.next_attempt_at > timezone.now() + timedelta(seconds=3)
    assert kapso.requests == []  # Kapso was not asked


# --- 7. Sends whose outcome is unknown --------------------------------------------------------------


def _stale_send(thread, text):
    [message] = services.outbound_queue(thread=thread, text=text, author="agent")
    started = timezone.now() - timedelta(minutes=5)
    Message.objects.filter(pk=message.pk).update(status="sending", sending_started_at=started, send_attempts=1,
                                                 error_code="no_answer")
    return message


@pytest.mark.django_db(transaction=True)
def test_the_history_lookup_follows_the_cursor_past_the_first_page(kapso, connection):
    thread = make_thread(connection)
    message = _stale_send(thread, "Your table is booked.")
    now = str(int(timezone.now().timestamp()))
    kapso.history.append({"id": "wamid.ours", "timestamp": now, "to": "15551234567", "type": "text",
                          "text": {"body": "Your table is booked."}, "kapso": {"direction": "outbound"}})
    for n in range(250):  # a busy number: our copy is on the third page
        kapso.history.insert(0, {"id": f"wamid.other.{n}", "timestamp": now, "to": "15550000000", "type": "text",
                                 "text": {"body": f"Order {n}"}, "kapso": {"direction": "outbound"}})

    services.outbox_recover_stale(older_than=timedelta(seconds=30))

    message.refresh_from_db()
    assert (message.status, message.wamid) == ("sent", "wamid.ours")
    assert len(kapso.requests_to("GET", r"/messages")) == 3 and kapso.sent == []


@pytest.mark.django_db(transaction=True)
def test_a_send_whose_lookup_keeps_failing_ends_failed_and_the_outbox_moves_on(kapso, connection, settings):
    settings.OUTBOX_UNKNOWN_GIVE_UP_SECONDS = 60
    thread = make_thread(connection)
    message = _stale_send(thread, "First")
    [later] = services.outbound_queue(thread=thread, text="Second", author="agent")
    kapso.history_failures = 100

    thread_ids = services.outbox_recover_stale(older_than=timedelta(seconds=30))
    for thread_id in thread_ids:
        outbox_drain(str(thread_id))

    message.refresh_from_db()
    later.refresh_from_db()
    assert (message.status, message.error_text) == ("failed", "delivery unknown: not resent, to avoid a duplicate")
    assert later.status == "sent" and [s["text"]["body"] for s in kapso.sent] == ["Second"]


@pytest.mark.django_db(transaction=True)
def test_a_send_whose_lookup_fails_stays_sending_within_the_bound(kapso, connection, settings):
    settings.OUTBOX_UNKNOWN_GIVE_UP_SECONDS = 3600
    thread = make_thread(connection)
    message = _stale_send(thread, "First")
    kapso.history_failures = 100

    services.outbox_recover_stale(older_than=timedelta(seconds=30))

    message.refresh_from_db()
    assert message.status == "sending" and kapso.sent == []


def test_list_all_messages_stops_at_the_last_page(kapso):
    for n in range(120):
        kapso.history.append({"id": f"wamid.{n}", "type": "text", "kapso": {"direction": "inbound"}})

    rows = client.list_all_messages(phone_number_id="1", direction="inbound", max_pages=10)

    assert [r["id"] for r in rows] == [f"wamid.{n}" for n in range(120)]
    assert len(kapso.requests_to("GET", r"/messages")) == 2
