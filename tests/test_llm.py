"""The model-provider package against stand-in providers speaking real HTTP on 127.0.0.1."""

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from apps.agents.llm import (
    PROVIDERS,
    ModelError,
    ModelReply,
    ToolCallRequest,
    ToolSpec,
    complete,
    original_tool_name,
    parse_retry_after,
    wire_tool_names,
)
from tests.fakes.model_servers import AnthropicServer, OpenAIServer

OPENAI = {"provider": "openai", "name": "gpt-test"}
ANTHROPIC = {"provider": "anthropic", "name": "claude-test"}
OFFLINE = {"provider": "offline", "name": "demo"}
GET_CONVERSATION = ToolSpec(
    name="whatsapp.getConversation",
    description="Recent messages of this thread.",
    parameters={"type": "object", "properties": {"limit": {"type": "integer"}}},
)
GET_STATUS = ToolSpec(name="whatsapp.getStatus", description="Connection status.", parameters={"type": "object"})
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def openai_server(settings):
    with OpenAIServer() as server:
        settings.OPENAI_BASE_URL = server.url + "/v1"
        settings.OPENAI_API_KEY = "sk-test"
        settings.MODEL_TIMEOUT_SECONDS = 2.0
        yield server


@pytest.fixture
def anthropic_server(settings):
    with AnthropicServer() as server:
        settings.ANTHROPIC_BASE_URL = server.url
        settings.ANTHROPIC_API_KEY = "sk-ant-test"
        settings.MODEL_TIMEOUT_SECONDS = 2.0
        yield server


def tool_round_trip(call_id: str) -> list[dict]:
    """A conversation in which the model asked for the thread and got it back."""
    call = ToolCallRequest(id=call_id, name="whatsapp.getConversation", arguments={"limit": 5})
    return [
        {"role": "user", "content": "What did I say?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "name": "whatsapp.getConversation", "content": '{"messages": []}'},
    ]


# --- OpenAI-compatible ---------------------------------------------------------------------------


def test_it_returns_the_text_and_usage_of_an_openai_reply(openai_server):
    openai_server.reply_text("Hi there", input_tokens=12, output_tokens=3)

    reply = complete(OPENAI, "Be brief.", HELLO, [])

    assert reply == ModelReply(text="Hi there", tool_calls=[], input_tokens=12, output_tokens=3)
    assert openai_server.requests[0].path == "/v1/chat/completions"


def test_it_sends_the_system_prompt_first_and_the_key_as_a_bearer_token(openai_server):
    openai_server.reply_text("ok")

    complete(OPENAI, "Be brief.", HELLO, [])

    request = openai_server.requests[0]
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "gpt-test"
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]


def test_it_leaves_out_temperature_max_tokens_and_tools_when_not_given(openai_server):
    openai_server.reply_text("ok")

    complete(OPENAI, "", HELLO, [])

    assert set(openai_server.last_body) == {"model", "messages"}


def test_it_sends_temperature_and_max_tokens_when_given(openai_server):
    openai_server.reply_text("ok")

    complete({**OPENAI, "temperature": 0.2, "max_tokens": 300}, "", HELLO, [])

    assert openai_server.last_body["temperature"] == 0.2
    assert openai_server.last_body["max_tokens"] == 300


def test_it_offers_tools_as_functions_under_wire_safe_names(openai_server):
    openai_server.reply_text("ok")

    complete(OPENAI, "", HELLO, [GET_CONVERSATION])

    assert openai_server.last_body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "whatsapp_getConversation",
                "description": GET_CONVERSATION.description,
                "parameters": GET_CONVERSATION.parameters,
            },
        }
    ]


def test_it_maps_dotted_tool_names_on_the_wire(openai_server):
    call_id = openai_server.reply_tool_call("whatsapp_getConversation", {"limit": 5})

    reply = complete(OPENAI, "", HELLO, [GET_CONVERSATION])

    assert reply.text == ""
    assert reply.tool_calls == [ToolCallRequest(id=call_id, name="whatsapp.getConversation", arguments={"limit": 5})]


def test_it_sends_tool_calls_and_results_back_in_the_openai_format(openai_server):
    openai_server.reply_text("You said nothing yet.")

    reply = complete(OPENAI, "", tool_round_trip("call_7"), [GET_CONVERSATION])

    assert reply.text == "You said nothing yet."
    assert openai_server.last_body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_7",
                    "type": "function",
                    "function": {"name": "whatsapp_getConversation", "arguments": '{"limit": 5}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_7", "content": '{"messages": []}'},
    ]


def test_it_accepts_history_tool_calls_stored_as_plain_dicts(openai_server):
    openai_server.reply_text("ok")
    messages = tool_round_trip("call_7")
    messages[1]["tool_calls"] = [{"id": "call_7", "name": "whatsapp.getConversation", "arguments": {"limit": 5}}]

    complete(OPENAI, "", messages, [GET_CONVERSATION])

    assert openai_server.last_body["messages"][1]["tool_calls"][0]["function"]["name"] == "whatsapp_getConversation"


def test_it_reads_empty_tool_arguments_as_an_empty_object(openai_server):
    body = openai_server.message_body("", [("call_1", "whatsapp_getStatus", {})], 1, 1)
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = ""
    openai_server.reply_raw(json.dumps(body))

    reply = complete(OPENAI, "", HELLO, [GET_STATUS])

    assert reply.tool_calls == [ToolCallRequest(id="call_1", name="whatsapp.getStatus", arguments={})]


def test_it_points_each_provider_at_its_own_base_url_and_key(openai_server, settings):
    settings.GROQ_BASE_URL = openai_server.url + "/openai/v1"
    settings.GROQ_API_KEY = "gsk-test"
    openai_server.reply_text("from groq")

    reply = complete({"provider": "groq", "name": "llama-test"}, "", HELLO, [])

    assert reply.text == "from groq"
    assert openai_server.requests[0].path == "/openai/v1/chat/completions"
    assert openai_server.requests[0].headers["authorization"] == "Bearer gsk-test"


def test_it_calls_ollama_without_a_key(openai_server, settings):
    settings.OLLAMA_BASE_URL = openai_server.url + "/v1"
    settings.OLLAMA_API_KEY = ""
    openai_server.reply_text("local")

    assert complete({"provider": "ollama", "name": "llama3"}, "", HELLO, []).text == "local"
    assert "authorization" not in openai_server.requests[0].headers


# --- Anthropic -------------------------------------------------------------------------------------


def test_it_sends_anthropic_headers_and_a_top_level_system_prompt(anthropic_server):
    anthropic_server.reply_text("Hi", input_tokens=20, output_tokens=2)

    reply = complete(ANTHROPIC, "Be brief.", HELLO, [])

    request = anthropic_server.requests[0]
    assert reply == ModelReply(text="Hi", tool_calls=[], input_tokens=20, output_tokens=2)
    assert request.path == "/v1/messages"
    # The key and the API version as the official SDK sends them.
    assert request.headers["authorization"] == "Bearer sk-ant-test"
    assert request.headers["anthropic-version"]
    assert request.body == {
        "model": "claude-test",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
    }


def test_it_offers_anthropic_tools_with_an_input_schema(anthropic_server):
    anthropic_server.reply_text("ok")

    complete({**ANTHROPIC, "max_tokens": 50, "temperature": 0.5}, "", HELLO, [GET_CONVERSATION])

    body = anthropic_server.last_body
    assert (body["max_tokens"], body["temperature"]) == (50, 0.5)
    assert body["tools"] == [
        {
            "name": "whatsapp_getConversation",
            "description": GET_CONVERSATION.description,
            "input_schema": GET_CONVERSATION.parameters,
        }
    ]


def test_it_maps_anthropic_tool_use_back_to_the_original_name(anthropic_server):
    call_id = anthropic_server.reply_tool_call("whatsapp_getConversation", {"limit": 5}, text="Let me look.")

    reply = complete(ANTHROPIC, "", HELLO, [GET_CONVERSATION])

    assert reply.text == "Let me look."
    assert reply.tool_calls == [ToolCallRequest(id=call_id, name="whatsapp.getConversation", arguments={"limit": 5})]


def test_it_sends_anthropic_tool_use_and_merges_tool_results_into_one_user_turn(anthropic_server):
    anthropic_server.reply_text("Both done.")
    calls = [
        ToolCallRequest(id="toolu_1", name="whatsapp.getConversation", arguments={}),
        ToolCallRequest(id="toolu_2", name="whatsapp.getStatus", arguments={}),
    ]
    messages = [
        {"role": "user", "content": "Check everything"},
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_1", "name": "whatsapp.getConversation", "content": "[]"},
        {"role": "tool", "tool_call_id": "toolu_2", "name": "whatsapp.getStatus", "content": '{"ok": true}'},
    ]

    complete(ANTHROPIC, "", messages, [GET_CONVERSATION, GET_STATUS])

    assert anthropic_server.last_body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "whatsapp_getConversation", "input": {}},
                {"type": "tool_use", "id": "toolu_2", "name": "whatsapp_getStatus", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "[]"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": '{"ok": true}'},
            ],
        },
    ]


def test_it_leaves_out_empty_anthropic_text_blocks(anthropic_server):
    anthropic_server.reply_text("ok")

    complete(ANTHROPIC, "", tool_round_trip("toolu_9"), [GET_CONVERSATION])

    assistant = anthropic_server.last_body["messages"][1]
    assert [block["type"] for block in assistant["content"]] == ["tool_use"]


# --- Tool-name mapping -----------------------------------------------------------------------------


def test_it_keeps_tool_names_apart_when_sanitising_would_collide():
    tools = [ToolSpec("a.b", "", {}), ToolSpec("a_b", "", {}), ToolSpec("a:b", "", {})]

    names = wire_tool_names(tools, [])

    assert names["a_b"] == "a_b"  # already safe: keeps its own name
    assert len(set(names.values())) == 3
    assert all(original_tool_name(wire, names) == original for original, wire in names.items())


def test_it_shortens_long_names_to_the_wire_limit():
    long = "x." * 40

    names = wire_tool_names([ToolSpec(long, "", {}), ToolSpec(long + "y", "", {})], [])

    assert all(len(wire) <= 64 for wire in names.values())
    assert len(set(names.values())) == 2


def test_it_returns_a_name_the_model_made_up_unchanged():
    assert original_tool_name("no_such_tool", {"whatsapp.send": "whatsapp_send"}) == "no_such_tool"


# --- Errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 529])
def test_it_calls_server_trouble_and_rate_limits_transient(openai_server, status):
    openai_server.reply_error(status, "try later")

    with pytest.raises(ModelError) as caught:
        complete(OPENAI, "", HELLO, [])

    assert caught.value.transient is True
    assert caught.value.status == status
    assert "try later" in str(caught.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_it_calls_other_client_errors_permanent(openai_server, status):
    openai_server.reply_error(status, "Invalid model")

    with pytest.raises(ModelError) as caught:
        complete(OPENAI, "", HELLO, [])

    assert caught.value.transient is False
    assert f"HTTP {status}: Invalid model" in str(caught.value)


def test_it_reads_retry_after_seconds_from_a_429(openai_server):
    openai_server.reply_error(429, "Rate limit reached", headers={"Retry-After": "7"})

    with pytest.raises(ModelError) as caught:
        complete(OPENAI, "", HELLO, [])

    assert (caught.value.transient, caught.value.retry_after) == (True, 7.0)


def test_it_reads_retry_after_given_as_an_http_date():
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert 25 <= parse_retry_after(when) <= 30
    assert parse_retry_after("soon") is None


def test_it_classifies_anthropic_overload_as_transient(anthropic_server):
    anthropic_server.reply_error(529, "Overloaded")

    with pytest.raises(ModelError) as caught:
        complete(ANTHROPIC, "", HELLO, [])

    assert caught.value.transient is True
    assert "Overloaded" in str(caught.value)


def test_it_calls_a_timeout_transient(openai_server, settings):
    settings.MODEL_TIMEOUT_SECONDS = 0.2
    openai_server.reply_text("too late", delay=2)

    with pytest.raises(ModelError) as caught:
        complete(OPENAI, "", HELLO, [])

    assert caught.value.transient is True
    assert "did not answer within 0.2s" in str(caught.value)


def test_it_calls_a_refused_connection_transient(settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there

    with pytest.raises(ModelError) as caught:
        complete(OPENAI, "", HELLO, [])

    assert caught.value.transient is True


@pytest.mark.parametrize("body", ['{"choices": [', "<html>Bad gateway page</html>", '{"choices": []}', "[]"])
def test_it_raises_model_error_on_a_malformed_response(openai_server, body):
    openai_server.reply_raw(body)

    with pytest.raises(ModelError, match="malformed response"):
        complete(OPENAI, "", HELLO, [])


def test_it_raises_model_error_on_a_malformed_anthropic_response(anthropic_server):
    anthropic_server.reply_raw('{"content": [{"type": "text"}]}')

    with pytest.raises(ModelError, match="malformed response"):
        complete(ANTHROPIC, "", HELLO, [])


def test_it_raises_a_transient_error_when_the_model_writes_broken_tool_arguments(openai_server):
    body = openai_server.message_body("", [("call_1", "whatsapp_getStatus", {})], 1, 1)
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"limit": '
    openai_server.reply_raw(json.dumps(body))

    with pytest.raises(ModelError) as caught:
        complete(OPENAI, "", HELLO, [GET_STATUS])

    assert caught.value.transient is True


@pytest.mark.parametrize("provider", ["openai", "xai", "groq", "openrouter", "anthropic"])
def test_it_refuses_permanently_when_the_key_is_missing(settings, provider):
    setattr(settings, f"{provider.upper()}_API_KEY", "")

    with pytest.raises(ModelError) as caught:
        complete({"provider": provider, "name": "m"}, "", HELLO, [])

    assert caught.value.transient is False
    assert str(caught.value) == f"{provider.upper()}_API_KEY is not set"


def test_it_refuses_an_unknown_provider_permanently():
    with pytest.raises(ModelError) as caught:
        complete({"provider": "skynet", "name": "t-800"}, "", HELLO, [])

    assert caught.value.transient is False
    assert "Unknown model provider 'skynet'" in str(caught.value)


def test_it_refuses_a_model_without_a_name(openai_server):
    with pytest.raises(ModelError) as caught:
        complete({"provider": "openai"}, "", HELLO, [])

    assert caught.value.transient is False
    assert openai_server.requests == []


def test_it_names_every_provider():
    assert PROVIDERS == ("openai", "xai", "groq", "openrouter", "ollama", "anthropic", "offline")


# --- Official SDKs ---------------------------------------------------------------------------------


def test_it_calls_openai_compatible_providers_through_the_openai_sdk(openai_server):
    openai_server.reply_text("ok")

    complete(OPENAI, "", HELLO, [])

    assert openai_server.requests[0].headers["user-agent"].startswith("OpenAI/Python")


def test_it_calls_anthropic_through_the_anthropic_sdk(anthropic_server):
    anthropic_server.reply_text("ok")

    complete(ANTHROPIC, "", HELLO, [])

    assert anthropic_server.requests[0].headers["user-agent"].startswith("Anthropic/Python")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_the_sdks_do_not_retry_on_their_own(openai_server, anthropic_server, status):
    # Switchboard's retry policy decides (the agent turn backs off); one call is one request.
    openai_server.reply_error(status, "busy", headers={"Retry-After": "0"})
    anthropic_server.reply_error(status, "busy", headers={"Retry-After": "0"})

    for model in (OPENAI, ANTHROPIC):
        with pytest.raises(ModelError) as caught:
            complete(model, "", HELLO, [])
        assert (caught.value.transient, caught.value.status) == (True, status)

    assert (len(openai_server.requests), len(anthropic_server.requests)) == (1, 1)


def test_it_calls_an_unusable_base_url_permanent(settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = "ftp://models.example/v1"

    with pytest.raises(ModelError) as caught:
        complete(OPENAI, "", HELLO, [])

    assert caught.value.transient is False

# --- Offline -------------------------------------------------------------------------------------


def test_offline_says_it_is_the_demo_model_and_echoes_the_user():
    reply = complete(OFFLINE, "ignored", [{"role": "user", "content": "Where is my order?"}], [GET_STATUS])

    assert reply.tool_calls == []
    assert "offline demo model" in reply.text
    assert "You said: “Where is my order?”" in reply.text


def test_offline_is_deterministic():
    messages = [{"role": "user", "content": "What's the STATUS?"}]

    assert complete(OFFLINE, "", messages, [GET_STATUS]) == complete(OFFLINE, "", messages, [GET_STATUS])


def test_offline_truncates_a_long_message():
    reply = complete(OFFLINE, "", [{"role": "user", "content": "a" * 1000}], [])

    assert "a" * 300 + "…”" in reply.text
    assert "a" * 301 not in reply.text


def test_offline_calls_get_status_when_asked_about_status():
    reply = complete(OFFLINE, "", [{"role": "user", "content": "What's the Status of my line?"}], [GET_STATUS])

    assert [(call.name, call.arguments) for call in reply.tool_calls] == [("whatsapp.getStatus", {})]


def test_offline_does_not_call_a_tool_it_was_not_offered():
    reply = complete(OFFLINE, "", [{"role": "user", "content": "status?"}], [GET_CONVERSATION])

    assert reply.tool_calls == []


def test_offline_summarises_the_status_after_the_tool_answered():
    messages = [
        {"role": "user", "content": "status please"},
        {"role": "assistant", "content": "", "tool_calls": [ToolCallRequest("c1", "whatsapp.getStatus", {})]},
        {"role": "tool", "tool_call_id": "c1", "name": "whatsapp.getStatus", "content": '{"window_open":true}'},
    ]

    reply = complete(OFFLINE, "", messages, [GET_STATUS])

    assert reply.tool_calls == []
    assert "checked the status" in reply.text
    assert '{"window_open": true}' in reply.text


def test_offline_asks_again_after_a_new_status_question():
    earlier = [
        {"role": "user", "content": "status"},
        {"role": "assistant", "content": "", "tool_calls": [ToolCallRequest("c1", "whatsapp.getStatus", {})]},
        {"role": "tool", "tool_call_id": "c1", "name": "whatsapp.getStatus", "content": "{}"},
        {"role": "assistant", "content": "All fine."},
    ]

    reply = complete(OFFLINE, "", earlier + [{"role": "user", "content": "and the status now?"}], [GET_STATUS])

    assert reply.tool_calls[0].name == "whatsapp.getStatus"


def test_anthropic_turns_always_open_with_the_user():
    from apps.agents.llm.anthropic import request_body

    body = request_body({"provider": "anthropic", "name": "claude"}, "", [
        {"role": "assistant", "content": "Welcome to Acme!"},
        {"role": "user", "content": "Hi"},
    ], [], {})

    assert [turn["role"] for turn in body["messages"]] == ["user", "assistant", "user"]
