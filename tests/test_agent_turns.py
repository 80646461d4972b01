from datetime import timedelta

import pytest
from django.utils import timezone

from apps.agents import services
from apps.agents.models import AgentRun, ToolCall
from apps.agents.runtime import render_prompt
from apps.agents.tasks import run_turn
from apps.conversations.models import Handoff, Message
from apps.conversations.services import inbound_messages_record
from apps.kapso.payloads import parse_inbound
from tests.factories import make_thread
from tests.fakes.kapso_server import fixture

pytestmark = pytest.mark.django_db(transaction=True)


def receive(connection, text="Hello", wamid="wamid.in.1", phone="+15551234567"):
    payload = fixture("whatsapp.message.received__text")
    payload["message"] = {**payload["message"], "id": wamid, "text": {"body": text},
                          "timestamp": str(int(timezone.now().timestamp()))}
    payload["conversation"]["phone_number"] = phone
    recorded = inbound_messages_record(connection=connection, messages=[parse_inbound(payload)])
    [(thread_id, (_, ids))] = recorded.items()
    return services.run_request(org_id=connection.org_id, thread_id=thread_id, agent_id=connection.agent_id,
                                message_ids=ids)


def test_an_offline_turn_answers_as_a_demo_bot(connection, kapso, monkeypatch):
    drains = []
    monkeypatch.setattr("apps.conversations.tasks.enqueue", lambda task, *args, **kw: drains.append(task.name))
    run_id = receive(connection, "Hi there")

    run_turn(str(run_id))

    run = AgentRun.objects.get()
    assert run.status == "succeeded" and run.attempts == 1
    reply = Message.objects.get(direction="outbound")
    assert reply.author == "agent" and reply.run_id == run.id
    assert "offline demo model" in reply.text and "Hi there" in reply.text
    # Once the turn is recorded, its own worker sends the reply: no outbox task on the `default` queue.
    assert reply.status == "sent" and [s["text"]["body"] for s in kapso.sent] == [reply.text]
    assert drains == []


def test_a_turn_runs_tools_and_records_every_call(connection, openai, org):
    openai.reply_tool_call("whatsapp.getStatus", {})
    openai.reply_text("Your line is connected.")
    run_id = receive(connection)

    run_turn(str(run_id))

    call = ToolCall.objects.get()
    assert call.name == "whatsapp.getStatus" and call.org_id == org.id
    assert call.result["connection"]["status"] == "connected"
    assert call.result["window"]["open"] is True
    assert Message.objects.get(direction="outbound").text == "Your line is connected."
    first, second = openai.requests
    assert first.body["tools"][0]["function"]["name"] == "whatsapp_send"
    assert first.body["messages"][0]["role"] == "system"
    assert first.body["messages"][0]["content"].startswith("You help customers of Acme Shop.\n\n")
    assert second.body["messages"][-1]["role"] == "tool"


def test_the_send_tool_queues_a_message_before_the_answer(connection, openai):
    openai.reply_tool_call("whatsapp.send", {"text": "One moment, checking…"})
    openai.reply_text("Done: your order ships tomorrow.")
    run_id = receive(connection)

    run_turn(str(run_id))

    texts = list(Message.objects.filter(direction="outbound").order_by("created_at").values_list("text", flat=True))
    assert texts == ["One moment, checking…", "Done: your order ships tomorrow."]


def test_the_send_tool_refuses_outside_the_24_hour_window(connection, openai):
    openai.reply_tool_call("whatsapp.send", {"text": "Hello again"})
    openai.reply_text("ok")
    run_id = receive(connection)
    from apps.conversations.models import Thread

    Thread.objects.update(last_inbound_at=timezone.now() - timedelta(hours=25))

    run_turn(str(run_id))

    call = ToolCall.objects.get()
    assert "24-hour" in call.error
    assert list(Message.objects.filter(direction="outbound").values_list("text", flat=True)) == ["ok"]


def test_the_send_tool_refuses_numbers_the_agent_may_not_message(connection, openai):
    openai.reply_tool_call("whatsapp.send", {"text": "spam", "to": "+15550009999"})
    openai.reply_text("ok")

    run_turn(str(receive(connection)))

    assert "only message the current contact" in ToolCall.objects.get().error


def test_a_model_that_keeps_failing_fails_the_run_and_sends_the_fallback_once(connection, openai, agent, settings):
    settings.MODEL_MAX_ATTEMPTS = 3
    for _ in range(3):
        openai.reply_error(500, "overloaded")

    run_turn(str(receive(connection)))

    run = AgentRun.objects.get()
    assert run.status == "failed" and "overloaded" in run.error
    [reply] = Message.objects.filter(direction="outbound")
    assert reply.text == agent.fallback_text
    assert len(openai.requests) == 3


def test_a_permanent_model_error_is_not_retried(connection, openai):
    openai.reply_error(401, "bad key")

    run_turn(str(receive(connection)))

    assert len(openai.requests) == 1
    assert AgentRun.objects.get().status == "failed"


def test_a_thread_taken_over_by_a_person_gets_no_agent_answer(connection):
    run_id = receive(connection)
    from apps.conversations.models import Thread

    Thread.objects.update(handoff=Handoff.HUMAN)

    run_turn(str(run_id))

    assert AgentRun.objects.get().status == "skipped"
    assert not Message.objects.filter(direction="outbound").exists()


def test_a_second_turn_of_a_thread_cannot_start_while_one_runs(connection):
    first = receive(connection, wamid="wamid.a")
    assert services.run_claim(run_id=first) is not None
    second = receive(connection, wamid="wamid.b")

    assert second != first
    assert services.run_claim(run_id=second) is None
    assert AgentRun.objects.get(pk=second).status == "pending"


def test_messages_arriving_during_a_turn_are_answered_by_the_next_turn(connection):
    first = receive(connection, "one", wamid="wamid.a")
    run = services.run_claim(run_id=first)
    second = receive(connection, "two", wamid="wamid.b")
    receive(connection, "three", wamid="wamid.c")

    services.run_finish(run=run, outcome=services.TurnOutcome(status="succeeded", reply="answer to one"))
    run_turn(str(second))

    assert AgentRun.objects.filter(status="succeeded").count() == 2
    assert Message.objects.filter(run_id=second, direction="inbound").count() == 2


def test_a_turn_whose_claim_was_taken_over_writes_nothing(connection):
    run = services.run_claim(run_id=receive(connection))
    AgentRun.objects.filter(pk=run.pk).update(attempts=run.attempts + 1)  # another worker re-claimed it

    written = services.run_finish(run=run, outcome=services.TurnOutcome(status="succeeded", reply="late"))

    assert written is False
    assert not Message.objects.filter(direction="outbound").exists()


def test_a_turn_whose_worker_died_is_handed_out_again_with_new_messages(connection):
    dead = services.run_claim(run_id=receive(connection, "one", wamid="wamid.a"))
    waiting = receive(connection, "two", wamid="wamid.b")
    AgentRun.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))

    services.runs_recover_stale()

    dead.refresh_from_db()
    assert dead.status == "pending"
    assert not AgentRun.objects.filter(pk=waiting).exists()
    assert Message.objects.filter(run=dead, direction="inbound").count() == 2
    run_turn(str(dead.pk))
    assert AgentRun.objects.get().status == "succeeded"
    assert Message.objects.filter(direction="outbound").count() == 1


def test_a_turn_interrupted_too_often_gives_up_with_the_fallback(connection, agent):
    run = services.run_claim(run_id=receive(connection))
    AgentRun.objects.filter(pk=run.pk).update(attempts=3, heartbeat_at=timezone.now() - timedelta(minutes=5))

    services.runs_recover_stale()

    assert AgentRun.objects.get().status == "failed"
    assert Message.objects.get(direction="outbound").text == agent.fallback_text


def test_the_prompt_renders_its_variables():
    values = {"organizationName": "Acme", "agentName": "Ana", "contactName": "John", "contactPhone": "+1555",
              "now": "2026-11-21 10:00 UTC"}

    rendered = render_prompt("{{agentName}} of {{ organizationName }} helps {{contactName}} ({{contactPhone}}) "
                             "at {{now}}; {{unknown}} stays", values)

    assert rendered == "Ana of Acme helps John (+1555) at 2026-11-21 10:00 UTC; {{unknown}} stays"


def test_the_history_window_bounds_what_the_model_sees(connection, openai, agent):
    agent.history_window = 3
    agent.save()
    thread = make_thread(connection)
    for i in range(10):
        Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="inbound",
                               author="contact", text=f"old {i}", status="received", wamid=f"wamid.old.{i}")
    openai.reply_text("ok")

    run_turn(str(receive(connection, "newest", wamid="wamid.new")))

    sent = openai.last_body["messages"]
    assert [m["content"] for m in sent[1:]] == ["old 8", "old 9", "newest"]


def test_handing_back_answers_what_the_contact_sent_meanwhile(connection):
    from apps.conversations.models import Thread

    run_turn(str(receive(connection, "first", wamid="wamid.a")))
    thread = Thread.objects.get()
    thread.handoff = Handoff.HUMAN
    thread.save()
    from apps.webhooks.handlers import on_message_received

    payload = fixture("whatsapp.message.received__text")
    payload["message"] = {**payload["message"], "id": "wamid.b", "text": {"body": "hello? anyone?"}}
    on_message_received(connection, [parse_inbound(payload)])
    assert AgentRun.objects.filter(status="pending").count() == 0

    run_id = services.thread_hand_back(thread=thread)

    thread.refresh_from_db()
    assert thread.handoff == Handoff.AGENT and run_id is not None
    assert list(Message.objects.filter(run_id=run_id).values_list("text", flat=True)) == ["hello? anyone?"]


def test_handing_back_a_thread_with_nothing_new_schedules_nothing(connection):
    run_turn(str(receive(connection, "first", wamid="wamid.a")))
    from apps.conversations.models import Thread

    thread = Thread.objects.get()

    assert services.thread_hand_back(thread=thread) is None
