"""The start of a turn, in process: debounce timing, the allow-list refusal, the reset command."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.agents import services
from apps.agents.models import AgentRun, ThreadMemory
from apps.agents.tasks import run_turn
from apps.conversations.models import Message
from tests.test_agent_turns import receive

pytestmark = pytest.mark.django_db(transaction=True)


def age(run_id, **offsets: float) -> None:
    """Move the run's messages back in time: age(run, first=4.0, last=1.0) in seconds."""
    now = timezone.now()
    messages = list(Message.objects.filter(run_id=run_id).order_by("created_at"))
    for message, seconds in zip([messages[0], messages[-1]], [offsets["first"], offsets["last"]], strict=True):
        Message.objects.filter(pk=message.pk).update(created_at=now - timedelta(seconds=seconds))


@pytest.mark.parametrize(("texts", "first", "last", "waits"), [
    (["Hi"], 0.0, 0.0, True),  # just arrived: wait for the rest of the burst
    (["Hi", "I need"], 5.0, 2.5, False),  # silent longer than 2 s
    (["Hi", "I need"], 6.5, 0.1, False),  # still typing, but the burst started 3 x 2 s ago
    (["Hi", "Where is my order?"], 0.5, 0.0, False),  # a question reads as complete
    (["Hi", "x" * services.COMPLETE_MESSAGE_CHARS], 0.5, 0.0, False),  # so does a long message
])
def test_a_turn_waits_for_a_burst_to_end(connection, agent, texts, first, last, waits):
    agent.debounce_seconds = 2
    agent.save()
    run_id = None
    for index, text in enumerate(texts):
        run_id = receive(connection, text, wamid=f"wamid.burst.{index}")
    age(run_id, first=first, last=last)

    wait = services.run_debounce_wait(run_id=run_id)

    assert (wait > 0) is waits
    assert wait <= 2


def test_without_debounce_a_turn_never_waits(connection):
    run_id = receive(connection, "Hi")

    assert services.run_debounce_wait(run_id=run_id) == 0


def test_a_refused_contact_hears_the_not_allowed_text_once_a_day(connection):
    connection.allowed_contacts = ["+15550000001"]
    connection.not_allowed_text = "Members only."
    connection.save()

    run_turn(str(receive(connection, "Hi", wamid="wamid.a")))
    run_turn(str(receive(connection, "Hello", wamid="wamid.b")))

    assert list(Message.objects.filter(direction="outbound").values_list("text", "raw")) == [
        ("Members only.", {"notice": "not_allowed"})]
    assert set(AgentRun.objects.values_list("status", flat=True)) == {"skipped"}


def test_the_reset_command_answers_what_follows_it_in_the_same_burst_afresh(connection, agent):
    run_turn(str(receive(connection, "I am Ana", wamid="wamid.1")))
    receive(connection, "/RESET ", wamid="wamid.2")
    run_id = receive(connection, "Hi again", wamid="wamid.3")

    run_turn(str(run_id))

    replies = list(Message.objects.filter(run_id=run_id, direction="outbound").order_by("created_at"))
    assert replies[0].text == services.RESET_CONFIRMATION and replies[0].raw == {"notice": "reset"}
    assert "Hi again" in replies[1].text and "I am Ana" not in replies[1].text
    reset = Message.objects.get(wamid="wamid.2")
    assert ThreadMemory.objects.get(thread=reset.thread).context_starts_at == reset.created_at


# --- Memory beyond the window ----------------------------------------------------------------------


@pytest.fixture
def openai(settings, agent):
    from tests.fakes.model_servers import OpenAIServer

    with OpenAIServer() as server:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = server.url + "/v1", "sk-test"
        agent.model_provider, agent.model_name, agent.tools = "openai", "gpt-test", []
        agent.save()
        yield server


def test_what_falls_out_of_the_window_is_summarised_and_given_to_the_model(connection, agent, openai):
    from apps.agents.runtime import EARLIER_SUMMARY, SUMMARY_INSTRUCTIONS
    from apps.agents.tasks import memory_refresh

    agent.history_window = 2
    agent.save()
    openai.reply_text("Hello Ana.")
    run_turn(str(receive(connection, "I am Ana and I ordered a lamp", wamid="wamid.m1")))
    openai.reply_text("Noted.")
    run_turn(str(receive(connection, "It is blue", wamid="wamid.m2")))
    thread = Message.objects.get(wamid="wamid.m1").thread

    openai.reply_text("Ana ordered a blue lamp.")
    memory_refresh(str(thread.pk))
    openai.reply_text("Your blue lamp ships Monday.")
    run_turn(str(receive(connection, "When does it ship?", wamid="wamid.m3")))

    summary_request = openai.requests[2].body["messages"]
    assert summary_request[0] == {"role": "system", "content": SUMMARY_INSTRUCTIONS}
    assert "Customer: I am Ana and I ordered a lamp" in summary_request[1]["content"]
    assert ThreadMemory.objects.get(thread=thread).summary == "Ana ordered a blue lamp."
    system = openai.requests[3].body["messages"][0]["content"]
    assert f"{EARLIER_SUMMARY}\nAna ordered a blue lamp." in system
    run_turn(str(receive(connection, "/reset", wamid="wamid.m4")))
    assert ThreadMemory.objects.get(thread=thread).summary == ""  # the reset clears it


def test_messages_older_than_history_ttl_hours_stay_out_of_the_history(connection, agent, openai):
    agent.history_ttl_hours = 1
    agent.save()
    openai.reply_text("Hi.")
    run_turn(str(receive(connection, "An old message", wamid="wamid.t1")))
    Message.objects.filter(thread__connection=connection).update(created_at=timezone.now() - timedelta(hours=2))
    openai.reply_text("Hello again.")

    run_turn(str(receive(connection, "A new one", wamid="wamid.t2")))

    assert [m["content"] for m in openai.requests[1].body["messages"][1:]] == ["A new one"]
