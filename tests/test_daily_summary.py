"""The daily summary: exact counts from seeded data, written once per organization and day however
often beat runs, its digest in the model's request (the OpenAI stand-in over HTTP), the offline demo
model's own text, the email only to owners who opted in, and the card on the dashboard's home."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from apps.agents import summaries
from apps.agents.models import DailySummary
from apps.contacts.models import Contact
from apps.conversations.models import Author, Direction, Message, Thread
from apps.orgs.models import Membership, Role
from tests.factories import make_connection, make_thread, make_user
from tests.test_dashboard_support import org_url, signed_in

pytestmark = pytest.mark.django_db(transaction=True)

# 19:30 in Madrid (summer time, UTC+2): the summary of the 24 hours to 18:00 there (16:00 UTC) is due.
NOW = datetime(2026, 6, 10, 17, 30, tzinfo=UTC)
START, END = datetime(2026, 6, 9, 16, 0, tzinfo=UTC), datetime(2026, 6, 10, 16, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


def add(thread, text, when, *, direction=Direction.INBOUND, status="received", **fields) -> Message:
    author = Author.CONTACT if direction == Direction.INBOUND else Author.AGENT
    message = Message.objects.create(org=thread.org, thread=thread, connection=thread.connection, direction=direction,
                                     author=author, text=text, status=status, **fields)
    Message.objects.filter(pk=message.pk).update(created_at=when)
    return message


@pytest.fixture
def seeded(org, connection, settings):
    """A day of conversations: answered, unanswered, a failed send, a handoff; and, outside the
    period or on the playground, messages that must not count."""
    settings.DAILY_SUMMARY_HOUR = 18
    org.time_zone = "Europe/Madrid"
    org.save()
    answered = make_thread(connection, "+15550000001", last_inbound_at=at(10), contact_name="Ana")
    add(answered, "Where is my order 4411?", at(10))
    add(answered, "It left the warehouse this morning.", at(10, 1), direction=Direction.OUTBOUND, status="sent")
    waiting = make_thread(connection, "+15550000002", last_inbound_at=at(12), contact_name="Ben")
    add(waiting, "Do you ship to Canada?", at(12))
    failing = make_thread(connection, "+15550000003", last_inbound_at=at(10, day=8), handoff="human",
                          handoff_at=at(13))
    add(failing, "Earlier question", at(10, day=8))  # two days ago: not in the period
    add(failing, "Your refund is on its way.", at(11), direction=Direction.OUTBOUND, status="failed",
        error_code="131047", error_text="More than 24 hours since the customer last replied")
    later = make_thread(connection, "+15550000004", last_inbound_at=at(16, 30))
    add(later, "After the summary hour", at(16, 30))  # after the period's end
    playground = make_connection(org, environment="playground", agent=connection.agent)
    add(make_thread(playground, "+15550000005", last_inbound_at=at(11)), "Testing the agent", at(11))
    for phone, created in (("+15550000001", at(9)), ("+15550000002", at(12)), ("+15550000003", at(9, day=1))):
        contact = Contact.objects.create(org=org, phone=phone)
        Contact.objects.filter(pk=contact.pk).update(created_at=created)
    return {"waiting": waiting, "failing": failing}


def test_the_counts_are_exact_and_name_who_waits_and_what_failed(org, seeded):
    facts = summaries.summary_facts(org=org, start=START, end=END)

    assert facts["counts"] == {"messages_in": 2, "messages_out": 1, "threads": 3, "new_contacts": 2,
                               "failed_sends": 1, "handoffs": 1, "unanswered": 1}
    assert [u["thread_id"] for u in facts["unanswered"]] == [str(seeded["waiting"].pk)]
    assert facts["failed"] == [{"thread_id": str(seeded["failing"].pk), "contact": "+15550000003",
                                "error": "More than 24 hours since the customer last replied"}]
    assert facts["said"] == ["Where is my order 4411?", "Do you ship to Canada?"]


def test_the_model_reads_the_digest_and_beat_twice_writes_once(org, seeded, openai):
    openai.reply_text("Customers asked where their orders are and whether we ship to Canada.")

    assert summaries.daily_summaries_due(now=NOW - timedelta(hours=2)) == 0  # 17:30 in Madrid: not yet
    written = summaries.daily_summaries_due(now=NOW)
    again = summaries.daily_summaries_due(now=NOW + timedelta(minutes=5))

    assert (written, again) == (1, 0)
    (summary,) = DailySummary.objects.filter(org=org)
    assert summary.day.isoformat() == "2026-06-10" and (summary.period_start, summary.period_end) == (START, END)
    assert summary.text == "Customers asked where their orders are and whether we ship to Canada."
    assert summary.model == {"provider": "openai", "name": "gpt-test"}
    (request,) = openai.requests
    digest = request.body["messages"][-1]["content"]
    assert "Where is my order 4411?" in digest and "Do you ship to Canada?" in digest
    assert "messages in: 2" in digest and "unanswered: 1" in digest
    assert "Testing the agent" not in digest and "After the summary hour" not in digest


def test_the_offline_demo_model_writes_a_plain_summary(org, seeded):
    summary = summaries.summary_write(org=org, now=NOW)

    assert summary.text.startswith("3 conversations with 2 messages from customers.")
    assert "order" in summary.text and "canada" in summary.text
    assert summary.model == {"provider": "offline", "name": "demo"}


def test_only_owners_who_opted_in_get_the_email(org, seeded):
    wants = make_user(org, Role.OWNER, email="wants@acme.test")
    make_user(org, Role.OWNER, email="not-asked@acme.test")
    admin = make_user(org, Role.ADMIN, email="admin@acme.test")
    Membership.objects.filter(user=wants).update(email_daily_summary=True)
    Membership.objects.filter(user=admin).update(email_daily_summary=True)  # not an owner: not sent

    summaries.daily_summaries_due(now=NOW)
    summaries.daily_summaries_due(now=NOW + timedelta(minutes=5))

    (email,) = mail.outbox
    assert email.to == ["wants@acme.test"]
    assert "Messages from customers: 2" in email.body and "Failed sends: 1" in email.body
    assert "+15550000003: More than 24 hours" in email.body
    assert DailySummary.objects.get(org=org).emailed_at is not None


def test_the_inbox_shows_the_latest_summary(client, org, seeded):
    summaries.summary_write(org=org, now=NOW)
    signed_in(client, make_user(org, Role.OPERATOR))

    html = client.get(org_url("inbox", org)).content.decode()

    assert "Daily summary · Wed 10 Jun" in html and "2 in · 1 out · 3 conversations" in html
    assert "1 waiting" in html and "Ben" in html and "The 24 hours to 18:00 (Europe/Madrid)" in html


def test_an_owner_opts_in_on_the_settings_page_and_an_admin_cannot(client, org):
    owner, admin = make_user(org, Role.OWNER), make_user(org, Role.ADMIN)

    signed_in(client, owner).post(org_url("org-settings", org), {"form": "emails", "email_daily_summary": "on"})
    signed_in(client, admin).post(org_url("org-settings", org), {"form": "emails", "email_daily_summary": "on"})

    assert Membership.objects.get(user=owner).email_daily_summary is True
    assert Membership.objects.get(user=admin).email_daily_summary is False
    assert Thread.objects.count() == 0
