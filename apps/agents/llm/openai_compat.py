"""One adapter for every OpenAI-compatible chat-completions API: OpenAI, xAI, Groq, OpenRouter, Ollama.

All go through the `openai` SDK; each provider differs only by `<PROVIDER>_BASE_URL` and
`<PROVIDER>_API_KEY` in settings, so pointing a base URL elsewhere (a proxy, a self-hosted server, a
test stand-in) needs no code.
"""

import json
from typing import Any

from . import (
    as_tool_call,
    malformed,
    original_tool_name,
    wire_tool_names,
)
from .sdk import json_body, model_errors, openai_client, timeout
from .types import ModelError, ModelReply, ToolCallRequest, ToolSpec

PROVIDERS = ("openai", "xai", "groq", "openrouter", "ollama")


def complete(model: dict, system: str, messages: list[dict], tools: list[ToolSpec]) -> ModelReply:
    provider = model["provider"]
    client, headers = openai_client(provider, model.get("api_key"))  # the org's own key first
    names = wire_tool_names(tools, messages)
    body = request_body(model, system, messages, tools, names)
    with model_errors(provider):
        # The raw response: the reply is read as the provider sent it, not as the SDK's models see it.
        raw = client.chat.completions.with_raw_response.create(**body, extra_headers=headers, timeout=timeout())
    return parse_reply(provider, json_body(provider, raw), names)


def request_body(
    model: dict, system: str, messages: list[dict], tools: list[ToolSpec], names: dict[str, str]
) -> dict[str, Any]:
    if not model.get("name"):
        raise ModelError(f"No model name given for provider {model['provider']!r}", transient=False)
    wire = [{"role": "system", "content": system}] if system else []
    body: dict[str, Any] = {"model": model["name"], "messages": wire + [_message(m, names) for m in messages]}
    # OpenAI rejects an empty tools array, so the key is left out when there is nothing to offer.
    if tools:
        body["tools"] = [_tool(tool, names) for tool in tools]
    if model.get("temperature") is not None:
        body["temperature"] = model["temperature"]
    if model.get("max_tokens") is not None:
        body["max_tokens"] = model["max_tokens"]
    return body


def _tool(tool: ToolSpec, names: dict[str, str]) -> dict:
    function = {"name": names[tool.name], "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


def _message(message: dict, names: dict[str, str]) -> dict:
    role = message["role"]
    if role == "tool":
        return {"role": "tool", "tool_call_id": message["tool_call_id"], "content": message["content"]}
    if role == "assistant":
        return _assistant_message(message, names)
    return {"role": role, "content": _content(message["content"])}


def _content(content: str | list) -> str | list:
    """Image parts as data URLs in `image_url` parts (OpenAI's vision format)."""
    if isinstance(content, str):
        return content
    return [
        {"type": "image_url", "image_url": {"url": f"data:{part['media_type']};base64,{part['data']}"}}
        if part["type"] == "image" else {"type": "text", "text": part["text"]}
        for part in content
    ]


def _assistant_message(message: dict, names: dict[str, str]) -> dict:
    calls = [as_tool_call(call) for call in message.get("tool_calls") or []]
    if not calls:
        return {"role": "assistant", "content": message.get("content") or ""}
    wire_calls = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": names[call.name], "arguments": json.dumps(call.arguments)},
        }
        for call in calls
    ]
    # null, not "", is what OpenAI itself sends for a turn that only calls tools.
    return {"role": "assistant", "content": message.get("content") or None, "tool_calls": wire_calls}


def parse_reply(provider: str, data: dict, names: dict[str, str]) -> ModelReply:
    try:
        message = data["choices"][0]["message"]
        calls = [_tool_call(provider, call, names) for call in message.get("tool_calls") or []]
        usage = data.get("usage") or {}
        return ModelReply(
            text=message.get("content") or "",
            tool_calls=calls,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise malformed(provider, data) from exc


def _tool_call(provider: str, call: dict, names: dict[str, str]) -> ToolCallRequest:
    function = call["function"]
    raw = function.get("arguments") or "{}"  # some providers send "" for a call without arguments
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        # The model wrote broken JSON; another sample usually doesn't, so this one is worth a retry.
        raise ModelError(
            f"{provider} returned tool arguments that are not JSON: {raw[:200]!r}", transient=True
        ) from exc
    if not isinstance(arguments, dict):
        raise ModelError(f"{provider} returned tool arguments that are not an object: {raw!r:.200}", transient=True)
    return ToolCallRequest(id=call["id"], name=original_tool_name(function["name"], names), arguments=arguments)
