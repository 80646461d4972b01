"""Faults that need no real processes: regressions for bugs the end-to-end fault suite found, and
hostile input fuzzed through the Django test client."""

import time
from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest
from celery import signals
from django.db import OperationalError
from django.db import connection as db
from django.utils import timezone

from apps.agents.models import AgentRun
from apps.conversations import selectors, services
from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from apps.kapso import client as kapso_client
from tests.factories import make_thread

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

    assert DjangoWorkerFixup(app).db_reuse_max == 1000  # PERFORMANCE.md: x2.7-5.8


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
