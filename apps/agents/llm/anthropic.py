"""Anthropic's Messages API (POST /v1/messages), through the `anthropic` SDK.

Where it differs from chat completions: the system prompt is a top-level field, max_tokens is
required, tool calls are `tool_use` content blocks of the assistant, and tool results are
`tool_result` blocks inside a *user* message.
"""

from typing import Any

from . import (
    as_tool_call,
    malformed,
    original_tool_name,
    wire_tool_names,
)
from .sdk import anthropic_client, json_body, model_errors, timeout
from .types import ModelError, ModelReply, ToolCallRequest, ToolSpec

DEFAULT_MAX_TOKENS = 1024


def complete(model: dict, system: str, messages: list[dict], tools: list[ToolSpec]) -> ModelReply:
    client = anthropic_client(model.get("api_key"))  # the org's own key first
    names = wire_tool_names(tools, messages)
    body = request_body(model, system, messages, tools, names)
    with model_errors("anthropic"):
        # The raw response: the reply is read as Anthropic sent it, not as the SDK's models see it.
        raw = client.messages.with_raw_response.create(
            model=body.pop("model"), max_tokens=body.pop("max_tokens"), messages=body.pop("messages"),
            extra_body=body, timeout=timeout(),  # the rest as built, whichever of them the SDK names
        )
    return parse_reply(json_body("anthropic", raw), names)


def request_body(
    model: dict, system: str, messages: list[dict], tools: list[ToolSpec], names: dict[str, str]
) -> dict[str, Any]:
    if not model.get("name"):
        raise ModelError("No model name given for provider 'anthropic'", transient=False)
    body: dict[str, Any] = {
        "model": model["name"],
        "max_tokens": model.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "messages": _turns(messages, names),
    }
    if system:
        body["system"] = system
    if tools:
        body["tools"] = [
            {"name": names[tool.name], "description": tool.description, "input_schema": tool.parameters}
            for tool in tools
        ]
    if model.get("temperature") is not None:
        body["temperature"] = model["temperature"]
    return body


def _turns(messages: list[dict], names: dict[str, str]) -> list[dict]:
    """Neutral messages as Anthropic turns, neighbours of the same role merged into one turn.

    Merging is what puts consecutive tool results into the single user turn Anthropic expects
    right after the assistant's tool_use blocks.
    """
    turns: list[dict] = []
    for message in messages:
        role, blocks = _blocks(message, names)
        if not blocks:  # Anthropic rejects empty text blocks and empty turns
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    if turns and turns[0]["role"] == "assistant":
        # Anthropic wants the user to speak first; a chat history window often opens with the
        # business's message. Keep it as context rather than dropping it.
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": "(earlier in this conversation)"}]})
    return turns


def _blocks(message: dict, names: dict[str, str]) -> tuple[str, list[dict]]:
    role, text = message["role"], message.get("content") or ""
    if role == "tool":
        result = {"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": text}
        return "user", [result]
    if isinstance(text, list):  # text and image parts; images as base64 sources (Anthropic's vision format)
        return role, [
            {"type": "image", "source": {"type": "base64", "media_type": part["media_type"], "data": part["data"]}}
            if part["type"] == "image" else {"type": "text", "text": part["text"]}
            for part in text if part["type"] == "image" or part.get("text")
        ]
    blocks = [{"type": "text", "text": text}] if text else []
    if role == "assistant":
        calls = [as_tool_call(call) for call in message.get("tool_calls") or []]
        blocks += [
            {"type": "tool_use", "id": call.id, "name": names[call.name], "input": call.arguments} for call in calls
        ]
    return role, blocks


def parse_reply(data: dict, names: dict[str, str]) -> ModelReply:
    try:
        blocks = data["content"]
        texts = [block["text"] for block in blocks if block["type"] == "text"]
        calls = [_tool_call(block, names) for block in blocks if block["type"] == "tool_use"]
        usage = data.get("usage") or {}
        return ModelReply(
            text="\n".join(texts),
            tool_calls=calls,
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise malformed("anthropic", data) from exc


def _tool_call(block: dict, names: dict[str, str]) -> ToolCallRequest:
    arguments = block.get("input") or {}
    if not isinstance(arguments, dict):
        raise TypeError("tool_use input is not an object")
    return ToolCallRequest(id=block["id"], name=original_tool_name(block["name"], names), arguments=arguments)
