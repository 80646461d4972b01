"""conversation.handoff, notifications, give-back after N minutes, business hours."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.agents import playground, services
from apps.agents.models import AgentRun, ToolCall
from apps.agents.tasks import run_turn, sweep_give_back
from apps.conversations import services as conversations
from apps.conversations.models import Message, Thread
from apps.conversations.services import handoff_email_send
from apps.orgs.models import Membership
from apps.whatsapp.hours import HoursInvalid, hours_clean, hours_next_opening, hours_open
from tests.factories import make_user, work_off_turn
from tests.test_agent_turns import receive

pytestmark = pytest.mark.django_db(transaction=True)

WEEKDAYS = {"timezone": "Europe/Madrid", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}


@pytest.fixture
def openai(openai, agent):
    agent.tools = [*agent.tools, "conversation.handoff"]
    agent.save()
    return openai


def test_the_agent_hands_the_thread_to_people_and_the_contact_gets_its_message(connection, openai):
    openai.reply_tool_call("conversation.handoff", {"reason": "contact_asked", "message": "A colleague will reply."})
    run_id = receive(connection, "Can I talk to a person?")

    run_turn(str(run_id))

    thread = Thread.objects.get()
    assert thread.handoff == "human" and thread.handoff_reason == "contact_asked"
    assert thread.needs_person_since is not None and thread.handoff_at is not None
    [reply] = Message.objects.filter(direction="outbound")
    assert (reply.text, reply.status, reply.author) == ("A colleague will reply.", "queued", "agent")
    assert AgentRun.objects.get().status == "succeeded"
    assert ToolCall.objects.get().result["handed_off"] is True
    assert len(openai.requests) == 1  # the handoff ends the turn: no second model call


def test_a_handoff_with_an_unknown_reason_is_refused_and_the_model_is_told(connection, openai):
    openai.reply_tool_call("conversation.handoff", {"reason": "bored", "message": "Bye"})
    openai.reply_text("I can help you myself.")
    run_turn(str(receive(connection, "Hi")))

    assert Thread.objects.get().handoff == "agent"
    assert "reason" in ToolCall.objects.get().error
    assert Message.objects.get(direction="outbound").text == "I can help you myself."


def test_operators_who_opted_in_get_an_email_with_the_reason_and_a_link(connection, openai, org, other_org):
    keen = make_user(org, email="keen@acme.test")
    Membership.objects.filter(user=keen).update(email_on_handoff=True)
    make_user(org, email="quiet@acme.test")
    outsider = make_user(other_org, email="out@other.test")
    Membership.objects.filter(user=outsider).update(email_on_handoff=True)
    openai.reply_tool_call("conversation.handoff", {"reason": "complaint", "message": "Sorry! A person will reply."})

    run_turn(str(receive(connection, "This is the third broken order!")))

    thread = Thread.objects.get()
    mail.outbox.clear()
    assert handoff_email_send(thread_id=thread.pk) == 1
    [email] = mail.outbox
    assert email.to == ["keen@acme.test"]
    assert "Complaint" in email.body and f"/o/{org.slug}/threads/{thread.pk}/" in email.body


def test_a_handoff_in_the_playground_emails_nobody_and_starting_over_gives_the_agent_back(agent, openai, org):
    keen = make_user(org, email="keen@acme.test")
    Membership.objects.filter(user=keen).update(email_on_handoff=True)
    openai.reply_tool_call("conversation.handoff", {"reason": "contact_asked", "message": "A colleague will reply."})
    thread = playground.playground_thread(agent=agent, user=keen)
    playground.playground_say(thread=thread, text="Can I talk to a person?")

    work_off_turn(thread)

    thread.refresh_from_db()
    assert thread.handoff == "human" and handoff_email_send(thread_id=thread.pk) == 0
    playground.playground_reset(thread=thread)
    thread.refresh_from_db()
    assert (thread.handoff, thread.needs_person_since, thread.handoff_reason) == ("agent", None, "")


def test_no_email_once_a_person_answered(connection, org):
    keen = make_user(org, email="keen@acme.test")
    Membership.objects.filter(user=keen).update(email_on_handoff=True)
    thread = _handed_off_thread(connection)
    conversations.operator_reply(thread=thread, text="Hello, I am Ana.")

    assert handoff_email_send(thread_id=thread.pk) == 0
    thread.refresh_from_db()
    assert thread.needs_person_since is None and thread.last_operator_reply_at is not None


def test_outside_business_hours_the_contact_is_told_when_a_person_answers(connection, openai, monkeypatch):
    connection.business_hours = WEEKDAYS
    connection.save()
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(services.timezone, "now", lambda: saturday)
    openai.reply_tool_call("conversation.handoff", {"reason": "sales", "message": "A person will send a quote."})

    run_turn(str(receive(connection, "I want 40 chairs")))

    text = Message.objects.get(direction="outbound").text
    assert text.startswith("A person will send a quote.")
    assert "Mon–Fri 09:00–18:00 (Europe/Madrid)" in text and "Monday 09:00" in text


def test_a_contact_writing_after_the_give_back_time_is_answered_by_the_agent_at_once(
    connection, post_webhook, kapso_payload
):
    connection.resume_after_minutes = 30
    connection.save()
    thread = _handed_off_thread(connection, minutes_ago=31)

    response = post_webhook("messages", kapso_payload("whatsapp.message.received__text"), secret="conn-secret",
                            event="whatsapp.message.received")

    assert response.status_code == 200
    thread.refresh_from_db()
    assert thread.handoff == "agent" and thread.handoff_reason == "" and thread.needs_person_since is None
    run = AgentRun.objects.get(thread=thread)
    assert run.status == "pending" and Message.objects.filter(run=run, direction="inbound").count() == 1


def test_a_contact_writing_before_the_give_back_time_waits_for_people(connection, post_webhook, kapso_payload):
    connection.resume_after_minutes = 30
    connection.save()
    thread = _handed_off_thread(connection, minutes_ago=45)
    Thread.objects.filter(pk=thread.pk).update(last_operator_reply_at=timezone.now() - timedelta(minutes=5))

    post_webhook("messages", kapso_payload("whatsapp.message.received__text"), secret="conn-secret",
                 event="whatsapp.message.received")

    assert Thread.objects.get().handoff == "human" and not AgentRun.objects.exists()


def test_without_a_give_back_time_people_keep_the_thread_forever(connection, post_webhook, kapso_payload):
    _handed_off_thread(connection, minutes_ago=60 * 24 * 30)

    post_webhook("messages", kapso_payload("whatsapp.message.received__text"), secret="conn-secret",
                 event="whatsapp.message.received")
    sweep_give_back()

    assert Thread.objects.get().handoff == "human" and not AgentRun.objects.exists()


def test_the_sweeper_gives_back_threads_whose_time_passed_and_answers_what_waited(connection):
    connection.resume_after_minutes = 10
    connection.save()
    late = _handed_off_thread(connection, minutes_ago=11)
    Message.objects.create(org=connection.org, thread=late, connection=connection, direction="inbound",
                           author="contact", text="Anyone?", status="received")
    recent = _handed_off_thread(connection, phone="+15550000002", minutes_ago=2)

    sweep_give_back()

    late.refresh_from_db()
    recent.refresh_from_db()
    assert (late.handoff, recent.handoff) == ("agent", "human")
    assert AgentRun.objects.get().thread_id == late.pk


def test_the_agent_stays_quiet_during_business_hours_when_asked_to(connection, post_webhook, kapso_payload,
                                                                   monkeypatch):
    connection.business_hours = WEEKDAYS
    connection.agent_only_outside_hours = True
    connection.save()
    from apps.webhooks import handlers

    monkeypatch.setattr(handlers.timezone, "now", lambda: datetime(2026, 11, 30, 10, 0, tzinfo=UTC))  # Monday
    post_webhook("messages", kapso_payload("whatsapp.message.received__text"), secret="conn-secret",
                 event="whatsapp.message.received")
    assert Message.objects.count() == 1 and not AgentRun.objects.exists()

    monkeypatch.setattr(handlers.timezone, "now", lambda: datetime(2026, 11, 30, 20, 0, tzinfo=UTC))
    payload = kapso_payload("whatsapp.message.received__text")
    payload["message"] = {**payload["message"], "id": "wamid.evening"}
    post_webhook("messages", payload, secret="conn-secret", event="whatsapp.message.received")
    assert AgentRun.objects.count() == 1


def test_business_hours_are_checked_and_explained():
    assert hours_clean({}) == {}
    assert hours_clean({**WEEKDAYS, "days": ["fri", "mon"]})["days"] == ["mon", "fri"]
    for bad in ({**WEEKDAYS, "timezone": "Mars/Base"}, {**WEEKDAYS, "days": ["funday"]},
                {**WEEKDAYS, "start": "19:00"}, {**WEEKDAYS, "end": "late"}, ["mon"]):
        with pytest.raises(HoursInvalid):
            hours_clean(bad)
    friday_evening = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)  # 19:30 in Madrid
    assert not hours_open(WEEKDAYS, friday_evening)
    assert hours_open(WEEKDAYS, datetime(2026, 11, 27, 9, 30, tzinfo=UTC))
    assert hours_next_opening(WEEKDAYS, friday_evening).isoformat() == "2026-11-30T09:00:00+01:00"


def _handed_off_thread(connection, phone="+15551234567", minutes_ago=1) -> Thread:
    from tests.factories import make_thread

    when = timezone.now() - timedelta(minutes=minutes_ago)
    thread = make_thread(connection, phone=phone, handoff="human", handoff_reason="contact_asked",
                         handoff_at=when, needs_person_since=when, last_inbound_at=when)
    return thread
