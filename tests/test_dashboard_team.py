# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Team work in the dashboard: who needs a person first, assignment, labels, notes, canned replies."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Thread
from tests.factories import make_thread
from tests.test_dashboard_support import (  # noqa: F401 - fixtures
    add_message,
    operator,
    org_url,
    outsider,
    owner,
    signed_in,
    thread,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _needs_person(thread, reason="complaint", minutes_ago=5):
    when = timezone.now() - timedelta(minutes=minutes_ago)
    Thread.objects.filter(pk=thread.pk).update(handoff="human", handoff_reason=reason, handoff_at=when,
                                               needs_person_since=when)


def test_threads_that_need_a_person_come_first_with_the_reason(client, operator, connection):
    now = timezone.now()
    quiet = make_thread(connection, phone="+15550000001", contact_name="Quiet Quinn", last_message_at=now)
    add_message(quiet, "Thanks!")
    angry = make_thread(connection, phone="+15550000002", contact_name="Angry Ann",
                        last_message_at=now - timedelta(hours=3))
    add_message(angry, "Third broken order")
    _needs_person(angry)

    body = signed_in(client, operator).get(org_url("inbox", connection.org)).content.decode()

    assert body.index("Needs a person") < body.index("Angry Ann") < body.index("Quiet Quinn")
    assert body.count("Angry Ann") == 1  # listed once, in the first list
    assert "Complaint" in body
    assert 'class="count"' in body  # the Inbox link's badge


def test_the_attention_badge_counts_only_this_orgs_waiting_threads(client, operator, thread, other_org):
    from tests.factories import make_connection

    _needs_person(thread)
    theirs = make_thread(make_connection(other_org), phone="+15550000009")
    _needs_person(theirs)

    response = signed_in(client, operator).get(org_url("attention", thread.org), **HTMX)

    assert response.status_code == 200
    assert ">1</span>" in response.content.decode()


def test_a_reply_from_the_team_takes_the_thread_off_the_needs_a_person_list(client, operator, thread):
    _needs_person(thread)
    Thread.objects.filter(pk=thread.pk).update(last_inbound_at=timezone.now())

    signed_in(client, operator).post(org_url("thread-reply", thread.org, thread_id=thread.pk), {"text": "Hi, Ana here"})

    thread.refresh_from_db()
    assert thread.needs_person_since is None and thread.handoff == "human"
    assert thread.handoff_reason == "complaint"  # still shown on the thread: why it came to people
