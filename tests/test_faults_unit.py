"""Faults that need no real processes: regressions for bugs the end-to-end fault suite found, and
hostile input fuzzed through the Django test client."""

from datetime import timedelta

import pytest
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
