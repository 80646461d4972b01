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


def test_an_operator_assigns_labels_notes_and_fills_the_contact_record(client, operator, thread, org):
    from apps.contacts import services as contacts
    from apps.contacts.models import Contact
    from apps.conversations.models import Note

    contacts.attribute_create(org=org, name="lead_status")
    Contact.objects.create(org=org, phone=thread.contact_phone, name="Ana")
    client = signed_in(client, operator)

    client.post(org_url("thread-assign", org, thread_id=thread.pk), {"user": operator.pk})
    client.post(org_url("thread-labels", org, thread_id=thread.pk), {"labels": "VIP, refund"})
    client.post(org_url("thread-note", org, thread_id=thread.pk), {"text": "Called her, refund approved"})
    client.post(org_url("thread-contact", org, thread_id=thread.pk), {"name": "Ana Ruiz", "attr-lead_status": "hot"})

    thread.refresh_from_db()
    assert (thread.assigned_to_id, thread.handoff, thread.labels) == (operator.pk, "human", ["vip", "refund"])
    assert Note.objects.get().text == "Called her, refund approved"
    assert Contact.objects.get().attributes == {"lead_status": "hot"}
    page = client.get(org_url("thread", org, thread_id=thread.pk)).content.decode()
    assert "Assigned to you" in page and "Called her, refund approved" in page and 'value="Ana Ruiz"' in page
    mine = client.get(org_url("inbox", org) + "?assigned=me&label=vip&attribute=lead_status&value=HOT")
    assert "Ana Ruiz" in mine.content.decode() or thread.contact_phone in mine.content.decode()
    nobody = client.get(org_url("inbox", org) + "?attribute=lead_status&value=cold").content.decode()
    assert thread.contact_phone not in nobody


def test_notes_are_never_sent_and_bad_labels_are_refused(client, operator, thread, org):
    from apps.conversations.models import Message

    client = signed_in(client, operator)
    client.post(org_url("thread-note", org, thread_id=thread.pk), {"text": "internal only"})
    response = client.post(org_url("thread-labels", org, thread_id=thread.pk), {"labels": "ok <script>"}, follow=True)

    assert not Message.objects.filter(text__contains="internal only").exists()
    assert "is not a label" in response.content.decode()
    thread.refresh_from_db()
    assert thread.labels == []


def test_assigning_to_someone_outside_the_org_is_refused(client, operator, thread, org, other_org):
    from tests.factories import make_user

    stranger = make_user(other_org)
    client = signed_in(client, operator)

    client.post(org_url("thread-assign", org, thread_id=thread.pk), {"user": stranger.pk})

    thread.refresh_from_db()
    assert thread.assigned_to_id is None


def test_ready_answers_are_per_organization_and_offered_in_the_reply_box(client, operator, thread, org, other_org):
    from apps.conversations import team

    team.canned_reply_create(org=other_org, shortcut="secret", text="Theirs")
    client = signed_in(client, operator)
    client.post(org_url("canned-replies", org), {"shortcut": "/Hours", "text": "We open 9 to 18."})
    refused = client.post(org_url("canned-replies", org), {"shortcut": "hours", "text": "Again"}, follow=True)

    page = client.get(org_url("thread", org, thread_id=thread.pk)).content.decode()
    assert '"shortcut": "hours"' in page and "We open 9 to 18." in page and "Theirs" not in page
    assert "already taken" in refused.content.decode()


def test_contacts_export_as_csv_only_this_org_and_formulas_defused(client, owner, org, other_org):
    from apps.contacts import services as contacts
    from apps.contacts.models import Contact

    contacts.attribute_create(org=org, name="plan")
    Contact.objects.create(org=org, phone="+15550000001", name="=HYPERLINK(\"x\")", attributes={"plan": "pro"})
    Contact.objects.create(org=other_org, phone="+15550000002", name="Theirs")

    response = signed_in(client, owner).get(org_url("contacts-export", org))

    body = response.content.decode()
    assert response["Content-Type"].startswith("text/csv")
    assert body.splitlines()[0] == "name,phone,bsuid,last_seen_at,plan"
    assert "'=HYPERLINK" in body and "+15550000001" in body and "pro" in body and "Theirs" not in body
