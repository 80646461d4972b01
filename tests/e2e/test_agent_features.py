"""The agent features operators know from other WhatsApp agent frameworks, end to end; and the
flows of knowledge, handoff and contacts (issue 12's "Done means").

One deployment (gunicorn, both workers, beat) serves the whole module; each test configures its
agent in the database, posts signed deliveries over HTTP and reads what reached the Kapso and
model stand-ins.
"""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from apps.agents.models import AgentRun, Schedule, ThreadMemory, ToolCall
from apps.contacts.models import Contact, ContactAttribute
from apps.conversations.models import Message, Thread
from apps.knowledge.services import source_create
from apps.orgs.models import Membership
from tests.e2e.conftest import (
    PHONE_NUMBER_ID,
    SECRET,
    inbound_payload,
    launch_stack,
    mark_reads,
    sends,
    settle,
    use_model,
    wait_until,
)
from tests.factories import make_agent, make_api_key, make_connection, make_org, make_user
from tests.fakes.kapso_server import FakeKapso
from tests.fakes.model_servers import AnthropicServer, OpenAIServer, ReceivedRequest, ScriptedReply
from tests.test_dashboard_support import org_url

pytestmark = pytest.mark.e2e


class Model(OpenAIServer):
    """Answers scripted replies first, then "Re: <the user messages since its last reply>".
    `delay` is waited out here (not by the handler) so `answered_at` says when each answer left."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.answered_at: list[float] = []

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._replies.clear()
            self.answered_at.clear()
            self.delay = 0.0

    def _serve(self, request: ReceivedRequest) -> ScriptedReply:
        with self._lock:
            self.requests.append(request)
            scripted = self._replies.popleft() if self._replies else None
            delay = self.delay
        if scripted is None:
            messages = request.body["messages"]
            last_reply = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
            new = [m["content"] for m in messages[last_reply + 1 :] if m["role"] == "user"]
            scripted = ScriptedReply(body=self.message_body("Re: " + " | ".join(new), [], 5, 5))
        time.sleep(delay)
        self.answered_at.append(time.time())
        return scripted

    def user_messages(self, index: int) -> list[str]:
        return [m["content"] for m in self.requests[index].body["messages"] if m["role"] == "user"]


@pytest.fixture(scope="module")
def kapso():
    with FakeKapso(api_key=settings.KAPSO_API_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def model():
    with Model() as server:
        yield server


@pytest.fixture(scope="module")
def fallback():
    with AnthropicServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(django_db_setup, kapso, model, fallback, tmp_path_factory):
    # Beat looks for due schedules every second here (a minute in production).
    env = {"ANTHROPIC_BASE_URL": fallback.url, "ANTHROPIC_API_KEY": "sk-ant-e2e", "SCHEDULE_TICK_SECONDS": "1",
           "TEST_EMAIL_FILE_PATH": str(tmp_path_factory.mktemp("mail"))}
    deployment = launch_stack(fake_kapso=kapso, model=model, env=env, beat=True,
                              log_dir=tmp_path_factory.mktemp("agent-features"), tag="features")
    yield deployment
    deployment.stop()


@pytest.fixture
def shop(transactional_db, stack, kapso, model, fallback):
    """A fresh organization whose agent talks to the OpenAI stand-in; the stand-ins forget the
    previous test."""
    with kapso._lock:
        kapso.requests.clear()
        kapso.sent.clear()
        kapso.history.clear()
    model.reset()
    with fallback._lock:
        fallback.requests.clear()
        fallback._replies.clear()
    org = make_org(name="Feature Shop")
    agent = make_agent(org, tools=[])
    use_model(agent)
    connection = make_connection(org, agent=agent, phone_number_id=PHONE_NUMBER_ID, secret=SECRET)
    yield org, agent, connection
    # Let the deployment finish what the test started before the tables are emptied.
    settle(lambda: (len(kapso.requests), AgentRun.objects.filter(status__in=["pending", "running"]).count()),
           quiet=1.0)


def texts(kapso, to: str = "+15551234567") -> list[str]:
    return [r["body"]["text"]["body"] for r in sends(kapso, to)]


def say(stack, text: str, phone: str = "+15551234567") -> None:
    response = stack.post(inbound_payload(text=text, phone=phone))
    assert response.status_code == 200, response.text


def test_the_contact_sees_typing_then_the_acknowledgement_before_a_slow_answer(shop, stack, kapso, model):
    _, agent, _ = shop
    use_model(agent, acknowledgement_text="Got it, one moment please.")
    model.delay = 3.0

    say(stack, "Where is my order 4411?")

    wait_until(lambda: len(sends(kapso)) == 2, 30, what="the acknowledgement and the answer")
    ack, answer = sends(kapso)
    assert ack["body"]["text"]["body"] == "Got it, one moment please."
    assert answer["body"]["text"]["body"] == "Re: Where is my order 4411?"
    assert ack["at"] < model.answered_at[0], "the acknowledgement must not wait for the model"
    [read] = mark_reads(kapso)
    inbound = Message.objects.get(direction="inbound")
    assert read["body"] == {"messaging_product": "whatsapp", "status": "read", "message_id": inbound.wamid,
                            "typing_indicator": {"type": "text"}}
    assert kapso.requests.index(read) < kapso.requests.index(ack)
    # The acknowledgement is a notice: the model's next request does not see it as an answer.
    say(stack, "Thanks!")
    wait_until(lambda: len(sends(kapso)) == 4, 30, what="the second turn")
    assert [m["content"] for m in model.requests[1].body["messages"][1:]] == [
        "Where is my order 4411?", "Re: Where is my order 4411?", "Thanks!"]


def test_typing_indicator_off_sends_no_mark_read(shop, stack, kapso, model):
    _, agent, _ = shop
    use_model(agent, typing_indicator=False)

    say(stack, "Hello?")

    wait_until(lambda: sends(kapso), 30, what="the answer")
    assert mark_reads(kapso) == []


def test_after_reset_the_model_sees_no_earlier_message(shop, stack, kapso, model):
    say(stack, "My name is Ana.")
    wait_until(lambda: len(sends(kapso)) == 1, 30, what="the first answer")

    say(stack, "/reset")
    wait_until(lambda: len(sends(kapso)) == 2, 30, what="the reset confirmation")
    assert texts(kapso)[1] == "Starting fresh: I have set our earlier conversation aside."
    assert len(model.requests) == 1, "the reset command needs no model call"

    say(stack, "What is my name?")
    wait_until(lambda: len(sends(kapso)) == 3, 30, what="the answer after the reset")
    assert [m["role"] for m in model.requests[1].body["messages"]] == ["system", "user"]
    assert model.user_messages(1) == ["What is my name?"]
    # Operators still see the whole thread.
    assert Message.objects.filter(text="My name is Ana.").exists()


def test_in_task_mode_each_request_holds_only_the_current_message(shop, stack, kapso, model):
    _, agent, _ = shop
    use_model(agent, mode="task")

    say(stack, "Translate: good morning")
    wait_until(lambda: len(sends(kapso)) == 1, 30, what="the first answer")
    say(stack, "Translate: good night")
    wait_until(lambda: len(sends(kapso)) == 2, 30, what="the second answer")

    assert [m["role"] for m in model.requests[1].body["messages"]] == ["system", "user"]
    assert model.user_messages(1) == ["Translate: good night"]


def test_a_contact_outside_allowed_contacts_causes_no_model_call(shop, stack, kapso, model):
    _, _, connection = shop
    connection.allowed_contacts = ["+15550000001"]
    connection.not_allowed_text = "This number only serves club members."
    connection.save()

    say(stack, "Hi", phone="+15551234567")
    say(stack, "Hello??", phone="+15551234567")
    say(stack, "Hi, member here", phone="+15550000001")

    wait_until(lambda: sends(kapso, "+15550000001"), 30, what="the member's answer")
    settle(lambda: (len(kapso.requests), AgentRun.objects.filter(status="pending").count()), quiet=1.5)
    assert texts(kapso, "+15551234567") == ["This number only serves club members."]  # once a day, not per message
    assert len(model.requests) == 1 and model.user_messages(0) == ["Hi, member here"]
    skipped = AgentRun.objects.filter(thread__contact_phone="+15551234567")
    assert {run.status for run in skipped} == {"skipped"}


def test_the_fallback_model_answers_when_the_primary_returns_500s(shop, stack, kapso, model, fallback):
    _, agent, _ = shop
    use_model(agent, fallback_model={"provider": "anthropic", "name": "claude-e2e"})
    for _ in range(settings.MODEL_MAX_ATTEMPTS):
        model.reply_error(500, "primary is down")
    fallback.reply_text("Answered by the fallback model.")

    say(stack, "Are you there?")

    wait_until(lambda: sends(kapso), 30, what="the fallback model's answer")
    assert texts(kapso) == ["Answered by the fallback model."]
    assert len(model.requests) == settings.MODEL_MAX_ATTEMPTS
    assert fallback.requests[0].body["model"] == "claude-e2e"
    assert fallback.requests[0].body["messages"][-1]["content"] == [{"type": "text", "text": "Are you there?"}]
    run = AgentRun.objects.get()
    assert run.status == "succeeded" and run.model == {"provider": "anthropic", "name": "claude-e2e"}


def test_long_messages_are_cut_and_the_model_is_told(shop, stack, kapso, model):
    _, agent, _ = shop
    use_model(agent, max_input_chars=20)

    say(stack, "I would like to order " + "many " * 40 + "lamps.")

    wait_until(lambda: sends(kapso), 30, what="the answer")
    [content] = model.user_messages(0)
    assert content.startswith("I would like to orde\n[")
    assert "cut" in content and "20 characters" in content


def test_a_turn_past_its_time_limit_sends_the_fallback_once_and_is_marked_timed_out(shop, stack, kapso, model):
    _, agent, _ = shop
    use_model(agent, turn_timeout_seconds=5)
    model.delay = 9.0

    say(stack, "Hello?")

    wait_until(lambda: AgentRun.objects.filter(status="timed_out").exists(), 30, what="the turn to time out")
    wait_until(lambda: model.answered_at, 30, what="the late model answer")
    settle(lambda: len(kapso.requests), quiet=2.0)
    assert texts(kapso) == [agent.fallback_text]  # once; the late answer is dropped
    run = AgentRun.objects.get()
    assert "longer than 5 seconds" in run.error


def test_three_messages_a_second_apart_get_one_answer_holding_all_three(shop, stack, kapso, model):
    _, agent, _ = shop
    use_model(agent, debounce_seconds=2)

    for index, text in enumerate(["Hi", "I need help", "with my order"]):
        if index:
            time.sleep(1.0)
        say(stack, text)

    wait_until(lambda: sends(kapso), 30, what="the answer")
    settle(lambda: (len(kapso.requests), len(model.requests)), quiet=2.5)
    assert len(model.requests) == 1
    assert model.user_messages(0) == ["Hi", "I need help", "with my order"]
    assert texts(kapso) == ["Re: Hi | I need help | with my order"]


def test_redaction_keeps_a_card_number_out_of_the_model_request_and_the_reply(shop, stack, kapso, model):
    _, agent, _ = shop
    use_model(agent, pii_redaction={"input": True, "output": True})
    model.reply_text("Thanks! Our billing desk is on +1 415 555 2671.")

    say(stack, "Charge my card 4111 1111 1111 1111 please, receipt to ana@example.com")

    wait_until(lambda: sends(kapso), 30, what="the answer")
    body = str(model.requests[0].body)
    assert "4111" not in body and "ana@example.com" not in body
    assert model.user_messages(0) == ["Charge my card [CARD] please, receipt to [EMAIL]"]
    assert texts(kapso) == ["Thanks! Our billing desk is on [PHONE]."]
    inbound = Message.objects.get(direction="inbound")
    assert "4111 1111 1111 1111" in inbound.text  # operators keep the original
    reply = Message.objects.get(direction="outbound")
    assert reply.raw["original_text"] == "Thanks! Our billing desk is on +1 415 555 2671."
    run = AgentRun.objects.get()
    assert run.redactions == {"input": {"CARD": 1, "EMAIL": 1}, "output": {"PHONE": 1}}


def test_older_messages_are_summarised_in_the_background_and_given_to_the_model(shop, stack, kapso, model):
    _, agent, _ = shop
    use_model(agent, history_window=2)
    summary_asked = lambda: [r for r in model.requests if "Summarise" in r.body["messages"][0]["content"]]  # noqa: E731

    for count, text in enumerate(["I am Ana", "I ordered a blue lamp", "Any news?"], start=1):
        say(stack, text)
        wait_until(lambda count=count: len(sends(kapso)) == count, 30, what=f"answer {count}")
    wait_until(summary_asked, 30, what="the summary request")
    wait_until(lambda: ThreadMemory.objects.exclude(summary="").exists(), 30, what="the summary to be kept")
    say(stack, "So?")
    wait_until(lambda: len(sends(kapso)) == 4, 30, what="the answer with the summary")

    assert "I am Ana" in summary_asked()[0].body["messages"][1]["content"]
    last = [r for r in model.requests if r not in summary_asked()][-1]
    assert "Summary of the earlier conversation" in last.body["messages"][0]["content"]
    assert "I am Ana" not in [m["content"] for m in last.body["messages"][1:]]


def test_a_schedule_fires_on_time_once_and_not_twice_across_a_beat_restart(shop, stack, kapso, model):
    org, agent, _ = shop
    say(stack, "Hi! Please remind me about my appointment.")
    wait_until(lambda: len(sends(kapso)) == 1, 30, what="the first answer (the window is open)")
    response = stack.http.post(f"/api/v1/agents/{agent.pk}/schedules", headers={
        "Authorization": f"Bearer {make_api_key(org)}"}, json={
        "contact": "+15551234567", "prompt": "Remind the contact of their appointment tomorrow at 10.",
        "every_minutes": 60})
    assert response.status_code == 201, response.text
    schedule_id = response.json()["id"]
    due = timezone.now() + timedelta(seconds=3)  # the first slot, seconds ahead instead of an hour
    Schedule.objects.filter(pk=schedule_id).update(next_run_at=due)

    wait_until(lambda: len(sends(kapso)) == 2, 30, what="the scheduled message")
    assert sends(kapso)[1]["at"] >= due.timestamp(), "not before its time"
    system = model.requests[-1].body["messages"][0]["content"]
    assert "Remind the contact of their appointment tomorrow at 10." in system
    stack.restart("beat")
    settle(lambda: (len(kapso.requests), AgentRun.objects.filter(status__in=["pending", "running"]).count()),
           quiet=4.0)

    assert len(sends(kapso)) == 2, "fired once, not again after beat restarted"
    assert AgentRun.objects.filter(schedule_id=schedule_id).count() == 1
    schedule = Schedule.objects.get(pk=schedule_id)
    assert schedule.last_result == "sent" and schedule.next_run_at > timezone.now() + timedelta(minutes=55)


# --- Knowledge, handoff and contacts (issue 12) ------------------------------------------------------


def test_an_faq_answer_reaches_the_model_and_the_turn_card_shows_its_source(shop, stack, kapso, model, client):
    org, agent, _ = shop
    use_model(agent, knowledge_auto=True)
    source_create(agent=agent, kind="faq", question="Do you offer refunds?", answer="Refunds are paid within 14 days.")
    source_create(agent=agent, kind="faq", question="Where are you?", answer="Calle Mayor 1, Madrid.")

    say(stack, "How do refunds work?")

    wait_until(lambda: sends(kapso), 30, what="the answer")
    system = model.requests[0].body["messages"][0]["content"]
    assert "Refunds are paid within 14 days." in system and "Calle Mayor" not in system
    thread = Thread.objects.get()
    client.force_login(make_user(org, "operator"))
    card = client.get(org_url("thread", org, thread_id=thread.pk)).content.decode()
    assert "The agent answered from the knowledge base · 1 passage" in card
    assert "Knowledge given to the agent" in card and "Do you offer refunds?" in card and "(faq)" in card


def test_a_handoff_goes_to_people_who_are_told_and_the_agent_answers_again_after_the_resume_time(
        shop, stack, kapso, model, client):
    org, agent, connection = shop
    use_model(agent, tools=["conversation.handoff"])
    connection.resume_after_minutes = 5
    connection.save()
    keen = make_user(org, "operator", email="keen@shop.test")
    Membership.objects.filter(user=keen).update(email_on_handoff=True)
    model.reply_tool_call("conversation.handoff", {"reason": "contact_asked",
                                                   "message": "A colleague will write to you shortly."})

    say(stack, "Can I talk to a person, please?")

    wait_until(lambda: texts(kapso) == ["A colleague will write to you shortly."], 30, what="the handoff message")
    thread = Thread.objects.get()
    assert (thread.handoff, thread.handoff_reason) == ("human", "contact_asked")
    # Operators are told: the inbox badge and the thread first with its reason, and an email to who opted in.
    client.force_login(keen)
    inbox = client.get(org_url("inbox", org)).content.decode()
    assert "1 conversation needs a person" in inbox and "Asked for a person" in inbox
    mail_dir = Path(stack.env["TEST_EMAIL_FILE_PATH"])
    wait_until(lambda: any(mail_dir.iterdir()), 30, what="the handoff email")
    [email] = [path.read_text() for path in mail_dir.iterdir()]
    assert "To: keen@shop.test" in email and "Reason: Asked for a person" in email
    # While people have it, the agent stays quiet; an operator answers.
    say(stack, "Hello?")
    client.post(org_url("thread-reply", org, thread_id=thread.pk), {"text": "Hi, Marta here. Checking."},
                HTTP_HX_REQUEST="true")
    wait_until(lambda: len(texts(kapso)) == 2, 30, what="the operator's reply")
    assert len(model.requests) == 1
    # Five minutes without an operator reply later, the contact writing is answered by the agent at once.
    past = timezone.now() - timedelta(minutes=6)
    Thread.objects.filter(pk=thread.pk).update(handoff_at=past, last_operator_reply_at=past)

    say(stack, "Is anyone there?")

    wait_until(lambda: any("Is anyone there?" in text for text in texts(kapso)), 30, what="the agent's answer")
    assert Thread.objects.get().handoff == "agent" and len(model.requests) >= 2


def test_the_agent_records_a_lead_status_but_not_an_attribute_it_may_not_write(shop, stack, kapso, model, client):
    org, agent, _ = shop
    use_model(agent, tools=["contact.update"])
    ContactAttribute.objects.create(org=org, name="lead_status", type="text", agent_writable=True)
    ContactAttribute.objects.create(org=org, name="plan", type="text", agent_writable=False)
    model.reply_tool_call("contact.update", {"attributes": {"lead_status": "qualified"}})
    model.reply_tool_call("contact.update", {"attributes": {"plan": "gold"}})
    model.reply_text("Thanks, I have noted that.")

    say(stack, "I want to buy 20 licences for my team.")

    wait_until(lambda: sends(kapso), 30, what="the answer")
    contact = Contact.objects.get()
    assert contact.attributes == {"lead_status": "qualified"}
    first, refused = ToolCall.objects.order_by("created_at")
    assert first.error == "" and "plan" in refused.error
    api = {"Authorization": f"Bearer {make_api_key(org)}"}
    record = stack.http.get(f"/api/v1/contacts/{contact.pk}", headers=api).json()
    assert record["attributes"] == {"lead_status": "qualified"}
    client.force_login(make_user(org, "operator"))
    beside = client.get(org_url("thread", org, thread_id=Thread.objects.get().pk)).content.decode()
    assert "qualified" in beside


def test_when_the_budget_runs_out_mid_conversation_the_agent_stops_with_one_fallback_and_owners_are_told(
    shop, stack, kapso, model
):
    org, agent, _ = shop
    make_user(org, role="owner", email="boss@feature.test")
    use_model(agent, fallback_text="Our assistant is paused; a person will reply soon.")
    org.monthly_token_budget = 25  # each answer of the stand-in costs 5 + 5 tokens
    org.save()
    for n, text in enumerate(["One?", "Two?", "Three?"], 1):  # 10, 20, then 30 tokens: the third starts under 25
        say(stack, text)
        wait_until(lambda n=n: len(sends(kapso)) == n, 30, what=f"answer {n}")

    say(stack, "Four?")
    wait_until(lambda: len(sends(kapso)) == 4, 30, what="the fallback")
    say(stack, "Five?")
    settle(lambda: (len(kapso.requests), AgentRun.objects.filter(status__in=["pending", "running"]).count()),
           quiet=1.5)

    assert texts(kapso) == ["Re: One?", "Re: Two?", "Re: Three?", "Our assistant is paused; a person will reply soon."]
    assert len(model.requests) == 3, "no model call once the budget is used up"
    org.refresh_from_db()
    assert org.budget_exhausted_at is not None  # the dashboard's banner
    mailbox = Path(stack.env["TEST_EMAIL_FILE_PATH"])
    ours = [path for path in mailbox.iterdir() if "boss@feature.test" in path.read_text()]
    mails = [path.read_text() for path in ours]
    for path in ours:  # the mailbox is the module's: other tests count what is in it
        path.unlink()
    assert len(mails) == 1 and "budget of 25 tokens is used up" in mails[0]
    assert "Your agents no longer answer on WhatsApp" in mails[0]
    assert AgentRun.objects.filter(status="skipped", error__contains="budget").count() == 2
