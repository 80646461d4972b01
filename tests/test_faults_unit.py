"""Faults that need no real processes: regressions for bugs the end-to-end fault suite found, and
hostile input fuzzed through the Django test client."""

from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest
from celery import signals
from django.db import OperationalError
from django.db import connection as db
from django.utils import timezone

from apps.agents.models import AgentRun
from apps.conversations import selectors
from apps.conversations.models import Message
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
