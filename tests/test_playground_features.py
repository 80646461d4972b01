# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""The playground shows the agent's conversation settings as a contact would experience them:
the acknowledgement, the reset command, task mode, redaction and the fallback model. It is a
normal run on the agent's playground line, so these are the same code paths as on WhatsApp."""

import pytest
from django.utils import timezone

from apps.agents import playground
from apps.agents.models import AgentRun
from apps.conversations.models import Message
from tests.factories import work_off_turn
from tests.fakes.model_servers import AnthropicServer, OpenAIServer
from tests.test_dashboard_support import operator, org_url, signed_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def models(settings, agent):
    with OpenAIServer() as primary, AnthropicServer() as fallback:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = primary.url + "/v1", "sk-test"
        settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_API_KEY = fallback.url, "sk-ant-test"
        agent.model_provider, agent.model_name, agent.tools = "openai", "gpt-test", []
        agent.save()
        yield primary, fallback


def say(agent, user, text: str) -> AgentRun:
    thread = playground.playground_thread(agent=agent, user=user)
    playground.playground_say(thread=thread, text=text)
    return work_off_turn(thread)


def bubbles(agent, user) -> list[tuple[str, str]]:
    thread = playground.playground_thread(agent=agent, user=user)
    return list(Message.objects.filter(thread=thread).order_by("created_at").values_list("direction", "text"))


def test_the_playground_acknowledges_redacts_and_falls_back_like_whatsapp(client, org, operator, agent, models):
    primary, fallback = models
    agent.acknowledgement_text = "One moment please."
    agent.pii_redaction = {"input": True, "output": True}
    agent.fallback_model = {"provider": "anthropic", "name": "claude-test"}
    agent.save()
    for _ in range(3):
        primary.reply_error(500, "down")
    fallback.reply_text("Our desk: +1 415 555 2671.")

    run = say(agent, operator, "My card is 4111 1111 1111 1111")

    assert bubbles(agent, operator) == [("inbound", "My card is 4111 1111 1111 1111"),
                                        ("outbound", "One moment please."), ("outbound", "Our desk: [PHONE].")]
    assert "4111" not in str(primary.requests[0].body) and "4111" not in str(fallback.requests[0].body)
    assert run.model == {"provider": "anthropic", "name": "claude-test"}
    page = signed_in(client, operator).get(org_url("agent", org, agent_id=agent.pk)).content.decode()
    assert "Answered by anthropic · claude-test (the backup model: the main one failed)" in page
    assert "Hidden from the model: 1 card number." in page and "Hidden in what the agent sent: 1 phone number." in page


def test_the_playground_resets_with_the_command_and_answers_alone_in_task_mode(operator, agent, models):
    primary, _ = models
    primary.reply_text("Hello Ana.")
    primary.reply_text("I don't know your name.")
    say(agent, operator, "I am Ana")

    say(agent, operator, "/reset")
    say(agent, operator, "Who am I?")

    assert bubbles(agent, operator)[2:4] == [("inbound", "/reset"), ("outbound", "Starting fresh: I have set our "
                                                                                 "earlier conversation aside.")]
    assert len(primary.requests) == 2
    assert [m["content"] for m in primary.requests[1].body["messages"][1:]] == ["Who am I?"]
    agent.mode = "task"
    agent.save()
    primary.reply_text("Noted.")
    say(agent, operator, "Second question")
    assert [m["content"] for m in primary.requests[2].body["messages"][1:]] == ["Second question"]


def test_the_playground_shows_the_knowledge_passages_the_agent_was_given(client, org, operator, agent, models):
    from apps.knowledge.services import source_create

    primary, _ = models
    agent.knowledge_auto = True
    agent.save()
    source_create(agent=agent, kind="faq", question="Do you offer refunds?", answer="Refunds are paid within 14 days.")
    source_create(agent=agent, kind="faq", question="Where are you?", answer="Calle Mayor 1, Madrid.")
    primary.reply_text("Within 14 days.")
    signed_in(client, operator)
    before = client.get(org_url("agent", org, agent_id=agent.pk)).content.decode()
    since = timezone.now().isoformat()

    say(agent, operator, "How do refunds work?")

    assert "Refunds are paid within 14 days." in primary.requests[0].body["messages"][0]["content"]
    live = client.get(org_url("playground-updates", org, agent_id=agent.pk), {"since": since}).content.decode()
    page = client.get(org_url("agent", org, agent_id=agent.pk)).content.decode()
    for shown in (live, page):  # the card arrives live, and is there after a reload
        assert "The agent answered from the knowledge base · 1 passage" in shown
        assert "Knowledge given to the agent" in shown and "Do you offer refunds?" in shown and "(faq)" in shown
        assert "Refunds are paid within 14 days." in shown
    assert "Calle Mayor" not in live  # only the passage given (the page lists every source too)
    assert "Knowledge given to the agent" not in before
