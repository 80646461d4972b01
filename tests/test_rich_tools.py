"""The agent's sending tools beyond text: sendTemplate (also outside the window), sendButtons,
sendList and sendMedia (inside it only), in the Meta shape Kapso documents; reply threading."""

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.agents import services
from apps.agents.models import ToolCall
from apps.agents.tasks import run_turn
from apps.conversations.models import Message, Thread
from apps.conversations.services import inbound_messages_record
from apps.conversations.tasks import outbox_drain
from apps.kapso.payloads import parse_inbound
from apps.whatsapp.tasks import templates_sync
from tests.fakes.kapso_server import fixture
from tests.fakes.model_servers import OpenAIServer
from tests.test_templates import ORDER_UPDATE, PENDING

pytestmark = pytest.mark.django_db(transaction=True)
RICH_TOOLS = [
    "whatsapp.send",
    "whatsapp.sendTemplate",
    "whatsapp.sendButtons",
    "whatsapp.sendList",
    "whatsapp.sendMedia",
]


def receive(connection, text="Hello", wamid="wamid.in.1", at=None) -> str:
    payload = copy.deepcopy(fixture("whatsapp.message.received__text"))
    payload["message"].update(id=wamid, text={"body": text}, timestamp=str(int((at or timezone.now()).timestamp())))
    recorded = inbound_messages_record(connection=connection, messages=[parse_inbound(payload)])
    [(thread_id, (_, ids))] = recorded.items()
    return str(
        services.run_request(
            org_id=connection.org_id, thread_id=thread_id, agent_id=connection.agent_id, message_ids=ids
        )
    )


@pytest.fixture
def openai(settings, agent, connection, kapso):
    connection.business_account_id = "102290129340398"
    connection.save()
    kapso.templates = [ORDER_UPDATE, PENDING]
    templates_sync(str(connection.pk))
    with OpenAIServer() as server:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = server.url + "/v1", "sk-test"
        agent.model_provider, agent.model_name, agent.tools = "openai", "gpt-4o", RICH_TOOLS
        agent.save()
        yield server


def turn_and_send(connection, run_id: str) -> None:
    run_turn(run_id)
    outbox_drain(str(Thread.objects.get(connection=connection).pk))


def test_send_buttons_reaches_kapso_in_the_documented_interactive_shape(connection, kapso, openai):
    openai.reply_tool_call(
        "whatsapp.sendButtons",
        {
            "body": "Confirm your order?",
            "buttons": [{"id": "btn_yes", "title": "Yes"}, {"id": "btn_no", "title": "No"}],
        },
    )
    openai.reply_text("")

    turn_and_send(connection, receive(connection))

    (sent,) = kapso.sent
    assert sent["type"] == "interactive"
    assert sent["interactive"] == {
        "type": "button",
        "body": {"text": "Confirm your order?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "btn_yes", "title": "Yes"}},
                {"type": "reply", "reply": {"id": "btn_no", "title": "No"}},
            ]
        },
    }
    assert Message.objects.get(direction="outbound").text == "Confirm your order?\n[Yes] · [No]"


def test_send_list_reaches_kapso_as_a_list_message(connection, kapso, openai):
    openai.reply_tool_call(
        "whatsapp.sendList",
        {
            "body": "Which shipping?",
            "button": "View options",
            "sections": [
                {"title": "Fast", "rows": [{"id": "express", "title": "Express", "description": "1-2 days"}]},
                {"title": "Cheap", "rows": [{"id": "standard", "title": "Standard"}]},
            ],
        },
    )
    openai.reply_text("")

    turn_and_send(connection, receive(connection))

    assert kapso.sent[0]["interactive"] == {
        "type": "list",
        "body": {"text": "Which shipping?"},
        "action": {
            "button": "View options",
            "sections": [
                {"title": "Fast", "rows": [{"id": "express", "title": "Express", "description": "1-2 days"}]},
                {"title": "Cheap", "rows": [{"id": "standard", "title": "Standard"}]},
            ],
        },
    }


def test_send_media_sends_by_link_with_a_caption(connection, kapso, openai):
    openai.reply_tool_call(
        "whatsapp.sendMedia", {"type": "image", "url": "https://shop.example/part.jpg", "caption": "This one"}
    )
    openai.reply_text("")

    turn_and_send(connection, receive(connection))

    assert kapso.sent[0]["type"] == "image"
    assert kapso.sent[0]["image"] == {"link": "https://shop.example/part.jpg", "caption": "This one"}


@pytest.mark.parametrize(
    ("tool", "arguments", "why"),
    [
        (
            "whatsapp.sendButtons",
            {"body": "Pick", "buttons": [{"id": str(i), "title": "x"} for i in range(4)]},
            "1 to 3 buttons",
        ),
        (
            "whatsapp.sendButtons",
            {"body": "Pick", "buttons": [{"id": "a", "title": "A title that is far too long"}]},
            "at most 20 characters",
        ),
        (
            "whatsapp.sendList",
            {
                "body": "Pick",
                "button": "Open",
                "sections": [{"rows": [{"id": str(i), "title": "x"} for i in range(11)]}],
            },
            "at most 10 rows",
        ),
        ("whatsapp.sendMedia", {"type": "image", "url": "http://169.254.169.254/x"}, "public https://"),
    ],
)
def test_out_of_bounds_arguments_are_refused_and_nothing_is_sent(connection, kapso, openai, tool, arguments, why):
    openai.reply_tool_call(tool, arguments)
    openai.reply_text("Sorry.")

    turn_and_send(connection, receive(connection))

    assert why in ToolCall.objects.get(name=tool).error
    assert [sent["type"] for sent in kapso.sent] == ["text"]


def test_outside_the_window_the_agent_sends_a_template_and_free_text_is_refused(connection, kapso, openai):
    # The contact wrote two days ago; a scheduled follow-up turn (or a late one) now runs.
    run_id = receive(connection, at=timezone.now() - timedelta(days=2))
    Thread.objects.update(last_inbound_at=timezone.now() - timedelta(days=2))
    openai.reply_tool_call("whatsapp.send", {"text": "Any news?"})
    openai.reply_tool_call("whatsapp.sendButtons", {"body": "Still there?", "buttons": [{"id": "y", "title": "Yes"}]})
    openai.reply_tool_call(
        "whatsapp.sendTemplate", {"name": "order_update", "language": "en_US", "variables": ["Maria", "A-1001"]}
    )
    openai.reply_text("")

    run_turn(run_id)
    outbox_drain(str(Thread.objects.get().pk))

    send, buttons, template = ToolCall.objects.order_by("step")
    assert "24-hour customer-service window" in send.error and "sendTemplate" in send.error
    assert "24-hour customer-service window" in buttons.error
    assert template.error == "" and template.result["queued"] is True
    (sent,) = [s for s in kapso.sent if s["type"] != "text"]
    assert sent["template"]["name"] == "order_update"
    tools = {t["function"]["name"]: t["function"]["description"] for t in openai.requests[0].body["tools"]}
    assert "order_update (en_US; variables: 1, 2)" in tools["whatsapp_sendTemplate"]
    assert "new_offer" not in tools["whatsapp_sendTemplate"]  # pending: not offered


@pytest.mark.parametrize(("threading", "quoted"), [("none", False), ("always", True)])
def test_reply_threading_quotes_the_message_answered(connection, kapso, openai, agent, threading, quoted):
    agent.reply_threading = threading
    agent.save()
    openai.reply_text("Here you go.")

    turn_and_send(connection, receive(connection, wamid="wamid.question"))

    context = kapso.sent[0].get("context")
    assert context == ({"message_id": "wamid.question"} if quoted else None)


def test_auto_threading_quotes_only_when_the_contact_wrote_again_meanwhile(connection, agent):
    from apps.agents.runtime import reply_quote

    agent.reply_threading = "auto"
    receive(connection, "Where is order 1?", wamid="wamid.first")
    thread = Thread.objects.get()
    first = Message.objects.get(wamid="wamid.first")
    assert reply_quote(agent=agent, thread=thread, answered=[first]) == ""  # answers the latest: no quote

    receive(connection, "And order 2?", wamid="wamid.second")  # the contact wrote again meanwhile

    assert reply_quote(agent=agent, thread=thread, answered=[first]) == "wamid.first"
