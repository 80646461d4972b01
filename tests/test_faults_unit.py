"""Faults that need no real processes: regressions for bugs the end-to-end fault suite found, and
hostile input fuzzed through the Django test client."""

import copy
import json
import threading
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import hypothesis
import psycopg
import pytest
from celery import signals
from django.db import OperationalError, transaction
from django.db import connection as db
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from apps.agents import services as agents
from apps.agents.models import AgentRun
from apps.conversations import selectors, services
from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from apps.kapso import client as kapso_client
from apps.kapso.signatures import sign
from tests.factories import make_thread
from tests.fakes.kapso_server import fixture

pytestmark = pytest.mark.django_db


def _message(thread, *, direction, text, run, at):
    author = "contact" if direction == "inbound" else "agent"
    status = "received" if direction == "inbound" else "sent"
    message = Message.objects.create(org=thread.org, thread=thread, connection=thread.connection, direction=direction,
                                     author=author, text=text, status=status, run=run)
    Message.objects.filter(pk=message.pk).update(created_at=at)
    return message


def test_a_turn_sees_the_messages_it_answers_after_the_reply_written_while_they_waited(connection):
    thread = make_thread(connection)
    first = AgentRun.objects.create(org=thread.org, thread=thread, status="succeeded")
    second = AgentRun.objects.create(org=thread.org, thread=thread, status="running")
    t = timezone.now()
    _message(thread, direction="inbound", text="Hi", run=first, at=t)
    # Arrived while the first turn was thinking, so it joined the second turn...
    _message(thread, direction="inbound", text="Also, my order?", run=second, at=t + timedelta(seconds=1))
    # ...and is older than the first turn's reply, which did not answer it.
    _message(thread, direction="outbound", text="Hello!", run=first, at=t + timedelta(seconds=2))

    history = selectors.history_for_turn(thread=thread, run_id=second.id, window=20)

    assert [m.text for m in history] == ["Hi", "Hello!", "Also, my order?"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_task_gets_a_working_database_connection_after_the_last_one_was_cut():
    db.ensure_connection()
    with psycopg.connect(host=db.settings_dict["HOST"] or "127.0.0.1", user=db.settings_dict["USER"],
                         dbname="postgres", autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [db.connection.info.backend_pid])
    with pytest.raises(OperationalError):
        Message.objects.count()  # the task that meets the cut fails...
    task = SimpleNamespace(request=SimpleNamespace(is_eager=False))
    signals.task_postrun.send(sender=None, task_id="t1", task=task, args=(), kwargs={}, retval=None, state="FAILURE")
    signals.task_prerun.send(sender=None, task_id="t2", task=task, args=(), kwargs={})

    assert Message.objects.count() == 0  # ...the next one of the same worker does not


def test_workers_reuse_their_database_connections_across_tasks():
    from celery.fixups.django import DjangoWorkerFixup

    from config.celery import app

    assert DjangoWorkerFixup(app).db_reuse_max == 1000  # docs/performance.md: x2.7-5.8


@pytest.fixture
def impatient_kapso_client(settings):
    """The product's Kapso client with a short timeout (its HTTP client is cached per thread)."""
    settings.KAPSO_TIMEOUT_SECONDS = 0.3
    kapso_client._local.__dict__.pop("client", None)
    yield
    kapso_client._local.__dict__.pop("client", None)


@pytest.mark.django_db(transaction=True)
def test_a_send_kapso_took_but_answered_too_late_is_looked_up_not_sent_again(kapso, connection, impatient_kapso_client):
    thread = make_thread(connection)
    [message] = services.outbound_queue(thread=thread, text="Your order shipped.", author="agent")
    kapso.delay_next_send(0.8)  # Kapso accepts it, after our timeout

    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert (message.status, message.error_code) == ("sending", "no_answer")  # not queued for a blind retry
    deadline = time.monotonic() + 5
    while not kapso.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    services.outbox_recover_stale(older_than=timedelta(seconds=0))
    outbox_drain(str(thread.id))

    message.refresh_from_db()
    assert len(kapso.sent) == 1
    assert (message.status, message.wamid) == ("sent", kapso.sent[0]["wamid"])


@pytest.mark.django_db(transaction=True)
def test_a_send_kapso_never_confirms_fails_after_the_attempts_are_used_up(kapso, connection, settings):
    thread = make_thread(connection)
    [message] = services.outbound_queue(thread=thread, text="Anyone there?", author="agent")
    Message.objects.filter(pk=message.pk).update(
        status="sending", send_attempts=settings.OUTBOX_MAX_ATTEMPTS, error_code="no_answer",
        sending_started_at=timezone.now() - timedelta(minutes=5))

    services.outbox_recover_stale(older_than=timedelta(seconds=30))

    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "no_answer")
    assert "did not confirm" in message.error_text and kapso.sent == []


# --- Hostile input -----------------------------------------------------------------------------------
# Both receivers, through the Django test client: whatever arrives, never a 500, never a row stored
# without a valid signature, and a refused body changes nothing.

FUZZ = hypothesis.settings(max_examples=150, deadline=None, derandomize=True,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NASTY_TEXT = st.sampled_from(["", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e", "💥" * 50, "' OR 1=1 --",
                              "9" * 5000, "+1 (555) 123-4567", "{{organizationName}}", "\n\r\t"])
TEXT = st.text(max_size=40) | NASTY_TEXT
LEAF = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
        | st.floats(allow_nan=False, allow_infinity=False) | TEXT)
JSON = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=25)
MESSAGE_EVENTS = ["whatsapp.message.received", "whatsapp.message.sent", "whatsapp.message.delivered",
                  "whatsapp.message.read", "whatsapp.message.failed", "whatsapp.conversation.created"]
EVENT = st.sampled_from(MESSAGE_EVENTS + ["whatsapp.phone_number.created", "whatsapp.phone_number.deleted"]) | st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
MESSAGE_FIXTURES = ["whatsapp.message.received__text", "whatsapp.message.received__image",
                    "whatsapp.message.received__button_reply", "whatsapp.message.received__audio_transcript",
                    "whatsapp.message.received__batch", "whatsapp.message.sent__text",
                    "whatsapp.message.sent__business_app", "whatsapp.message.delivered__text",
                    "whatsapp.message.read__text", "whatsapp.message.failed__131047"]
PROJECT_FIXTURES = ["whatsapp.phone_number.created", "whatsapp.phone_number.deleted"]


def _encode(value) -> bytes:
    # ASCII escapes, so lone surrogates and NULs arrive as the \\uXXXX a JSON encoder would send.
    return json.dumps(value, separators=(",", ":")).encode()


def _paths(value, prefix=()):
    """Every place in a payload where a fuzzed value can go."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _mutate(payload, data, *, keep=()):
    """Replace or delete a few parts of a documented payload (never the paths in `keep`)."""
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(payload) if p and p not in keep and not any(p[: len(k)] == k for k in keep)]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(JSON)
    return payload


def _rows() -> tuple[int, ...]:
    from apps.conversations.models import Thread
    from apps.webhooks.models import WebhookEvent

    return WebhookEvent.objects.count(), Thread.objects.count(), Message.objects.count(), AgentRun.objects.count()


def _post(client, path, raw: bytes, *, event=None, signature=None, key="fuzz"):
    headers = {"HTTP_X_IDEMPOTENCY_KEY": key}
    if event is not None:
        headers["HTTP_X_WEBHOOK_EVENT"] = event
    if signature is not None:
        headers["HTTP_X_WEBHOOK_SIGNATURE"] = signature
    return client.post(f"/webhook/kapso/{path}", data=raw, content_type="application/json", **headers)


@FUZZ
@given(data=st.data())
def test_unsigned_garbage_is_refused_without_a_500_or_a_stored_row(client, connection, data):
    kind = data.draw(st.sampled_from(["json", "bytes", "fixture"]))
    if kind == "json":
        raw = _encode(data.draw(JSON))
    elif kind == "bytes":
        raw = data.draw(st.binary(max_size=300))
    else:  # a well-formed delivery to a real number, with a wrong, foreign or malformed signature
        name = data.draw(st.sampled_from(MESSAGE_FIXTURES + PROJECT_FIXTURES))
        raw = _encode(_mutate(copy.deepcopy(fixture(name)), data, keep=[("phone_number_id",)]))
    path = data.draw(st.sampled_from(["messages", "project"]))
    signature = data.draw(st.none() | st.sampled_from([sign("wrong-secret", raw), "sha256=", "zz" * 32,
                                                       sign("conn-secret", raw + b" ")]))
    before = _rows()

    response = _post(client, path, raw, event=data.draw(st.none() | EVENT), signature=signature,
                     key=data.draw(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=300)))

    # 429 once this address has sent WEBHOOK_BAD_SIGNATURE_RATE forgeries (tests/test_abuse_limits.py).
    assert response.status_code in (400, 401, 429), response.content
    assert _rows() == before


@FUZZ
@given(data=st.data())
def test_signed_fuzzed_message_deliveries_are_stored_or_refused_never_a_500(client, connection, data):
    name = data.draw(st.sampled_from(MESSAGE_FIXTURES))
    payload = _mutate(copy.deepcopy(fixture(name)), data, keep=[("phone_number_id",)])
    if data.draw(st.booleans()) and "data" not in payload:
        payload = {"type": data.draw(EVENT), "batch": True, "data": [payload, payload]}
    raw = _encode(payload)
    before = _rows()

    response = _post(client, "messages", raw, event=data.draw(st.none() | EVENT), signature=sign("conn-secret", raw),
                     key=str(uuid.uuid4()))

    assert response.status_code in (200, 400, 401), response.content  # 401: the fuzz moved the number
    if response.status_code != 200:
        assert _rows() == before


@FUZZ
@given(data=st.data())
def test_signed_fuzzed_project_deliveries_are_stored_or_refused_never_a_500(client, db, data):
    payload = data.draw(JSON) if data.draw(st.booleans()) else _mutate(
        copy.deepcopy(fixture(data.draw(st.sampled_from(PROJECT_FIXTURES)))), data)
    raw = _encode(payload)
    before = _rows()

    response = _post(client, "project", raw, event=data.draw(st.none() | EVENT),
                     signature=sign("test-project-secret", raw), key=str(uuid.uuid4()))

    assert response.status_code in (200, 400), response.content
    if response.status_code != 200:
        assert _rows() == before


@pytest.mark.parametrize("path", ["messages", "project"])
def test_a_body_over_the_limit_is_refused_before_it_is_read(client, connection, settings, path):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    small = b"{}"

    declared = client.post(f"/webhook/kapso/{path}", data=small, content_type="application/json",
                           CONTENT_LENGTH=str(50 * 1024 * 1024))  # a 50 MB claim; only the header is read
    sent = _post(client, path, b'{"pad":"' + b"x" * 1000 + b'"}', signature=sign("conn-secret", b"x"))

    assert (declared.status_code, sent.status_code) == (413, 413)
    assert _rows() == (0, 0, 0, 0)


WRONG_TYPES = [None, -1, True, "x", [1], {"x": 1}]  # one of each JSON type


@pytest.mark.parametrize("name", MESSAGE_FIXTURES)
def test_a_signed_delivery_with_any_field_of_a_wrong_type_is_stored_or_refused_never_a_500(client, connection, name):
    """Systematically what the fuzz samples: every field of every documented payload, every type."""
    original = fixture(name)
    event = "whatsapp.message." + name.split(".")[-1].split("__")[0]
    # A batch's second item has the fields of its first: once is enough.
    for path in [p for p in _paths(original) if p and p[-1] != "phone_number_id" and p[:2] != ("data", 1)]:
        for wrong in WRONG_TYPES:
            payload = copy.deepcopy(original)
            parent = payload
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = wrong
            raw = _encode(payload)

            response = _post(client, "messages", raw, event=event, signature=sign("conn-secret", raw),
                             key=str(uuid.uuid4()))

            # 401: the change took the number out of reach (a batch's `data`), so no secret applies.
            assert response.status_code in (200, 400, 401), (path, wrong, response.content)


def test_nuls_and_lone_surrogates_are_stored_as_replacement_characters(client, connection):
    payload = fixture("whatsapp.message.received__text")
    payload["message"]["text"]["body"] = "a\x00b"
    payload["conversation"]["kapso"]["contact_name"] = "Jo\ud800hn"
    raw = _encode(payload)  # \u0000 and \ud800 escapes: valid JSON, refused by PostgreSQL as they are

    response = _post(client, "messages", raw, event="whatsapp.message.received", signature=sign("conn-secret", raw))

    assert response.status_code == 200, response.content
    message = Message.objects.get()
    assert (message.text, message.thread.contact_name) == ("a\ufffdb", "Jo\ufffdhn")


def test_a_nul_in_the_number_is_refused_as_unsigned_not_a_500(client, connection):
    response = _post(client, "messages", b'{"phone_number_id":"\\u0000","message":{}}', signature="00")

    assert response.status_code == 401


@pytest.mark.parametrize("depth", [40, 100_000])
def test_a_body_nested_too_deeply_is_refused(client, connection, depth):
    response = _post(client, "messages", b"[" * depth + b"]" * depth, signature="00")

    assert response.status_code == 400
    assert _rows() == (0, 0, 0, 0)


def test_a_project_delivery_whose_customer_is_not_an_object_is_stored_not_a_500(client, db):
    from apps.webhooks.project import customer_id_of

    payload = fixture("whatsapp.phone_number.created") | {"customer": "cust-1"}
    raw = _encode(payload)

    response = _post(client, "project", raw, event="whatsapp.phone_number.created",
                     signature=sign("test-project-secret", raw))

    assert response.status_code == 200, response.content
    assert customer_id_of(payload) == ""  # and the task that processes it reads it the same way


@pytest.mark.django_db(transaction=True)
def test_a_turn_that_waited_for_the_previous_turn_to_commit_starts_after_it_finished(connection, monkeypatch):
    thread = make_thread(connection)
    asked_at = timezone.now()
    previous = AgentRun.objects.create(org=thread.org, thread=thread, status="running", attempts=1,
                                       started_at=asked_at, heartbeat_at=asked_at)
    waiting = AgentRun.objects.create(org=thread.org, thread=thread, status="pending")
    finish_written = threading.Event()

    def finish_previous():  # the previous turn's run_finish, on its own connection, slow to commit
        with transaction.atomic():
            AgentRun.objects.filter(pk=previous.pk).update(status="succeeded", finished_at=timezone.now())
            finish_written.set()
            time.sleep(0.3)
        db.close()

    real_now, calls = timezone.now, []

    def now_as_when_the_claim_was_asked():  # the claim read the clock before the finish was written
        calls.append(1)
        return asked_at if len(calls) == 1 else real_now()

    finisher = threading.Thread(target=finish_previous)
    finisher.start()
    finish_written.wait()
    monkeypatch.setattr(agents.timezone, "now", now_as_when_the_claim_was_asked)
    claimed = agents.run_claim(run_id=waiting.pk)  # waits on the unique index until the finish commits
    monkeypatch.undo()
    finisher.join()

    previous.refresh_from_db()
    assert claimed is not None and claimed.started_at >= previous.finished_at
