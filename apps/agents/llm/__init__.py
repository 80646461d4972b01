"""Model providers behind one call: `complete(model, system, messages, tools) -> ModelReply`.

This package knows nothing of WhatsApp or Kapso. It speaks a neutral conversation format (below),
translates it to each provider's wire format, calls the provider through its official SDK (`openai`
for OpenAI and every OpenAI-compatible API, `anthropic` for Anthropic; see sdk.py), and raises
ModelError — classified as transient or permanent — on every failure. It makes one attempt (the SDKs'
own retries are off); the caller owns retries and backoff.

Messages, oldest first:
    {"role": "user", "content": str | [part, ...]}   # parts: {"type": "text", "text"} and
                                                    # {"type": "image", "media_type", "data" (base64)}
    {"role": "assistant", "content": str, "tool_calls": [ToolCallRequest, ...]}   # tool_calls optional
    {"role": "tool", "tool_call_id": str, "name": str, "content": str}            # content: JSON result
"""

import re
from collections.abc import Callable
from typing import Any

from django.conf import settings

from apps.core.http import parse_retry_after  # noqa: F401  (re-exported: the retry policy reads it here)

from .types import ModelError, ModelReply, ToolCallRequest, ToolSpec

__all__ = ["ModelError", "ModelReply", "ToolCallRequest", "ToolSpec", "complete", "PROVIDERS"]

PROVIDERS = ("openai", "xai", "groq", "openrouter", "ollama", "anthropic", "offline")


# Model families known to accept images. An agent can say otherwise (`model_accepts_images`).
_VISION_MODELS = re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-5|o[134]\b|o[134]-|claude-|chatgpt-4o|grok-.*vision|"
                            r"grok-4|llava|gemini)", re.IGNORECASE)


def accepts_images(model: dict) -> bool:
    """Whether the model takes image content: the agent's own say (`vision`), else what is known."""
    if model.get("vision") is not None:
        return bool(model["vision"])
    name = str(model.get("name") or "").rsplit("/", 1)[-1]  # "openai/gpt-4o" on OpenRouter
    return bool(_VISION_MODELS.match(name))


def text_of(content: str | list) -> str:
    """The text parts of a message's content, joined (for a model or a stand-in that reads no images)."""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


def complete(model: dict, system: str, messages: list[dict], tools: list[ToolSpec]) -> ModelReply:
    provider = model.get("provider")
    adapter = _adapters().get(provider)
    if adapter is None:
        known = ", ".join(PROVIDERS)
        raise ModelError(f"Unknown model provider {provider!r}; expected one of: {known}", transient=False)
    return adapter(model, system, messages, tools)


def _adapters() -> dict[str, Callable[..., ModelReply]]:
    # Imported here rather than at the top: the adapters use the helpers defined below (their types
    # come from .types).
    from . import anthropic, offline, openai_compat

    compat = {name: openai_compat.complete for name in openai_compat.PROVIDERS}
    return {**compat, "anthropic": anthropic.complete, "offline": offline.complete}


# --- Tool names on the wire -------------------------------------------------------------------

# OpenAI and Anthropic accept only these tool names; ours are dotted ("whatsapp.send").
_WIRE_SAFE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_UNSAFE_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def wire_tool_names(tools: list[ToolSpec], messages: list[dict]) -> dict[str, str]:
    """Original → wire-safe name for every tool this call mentions, offered or in the history.

    Names that are already safe keep themselves, so the sanitised ones can never take their place;
    a sanitised name that collides gets a numeric suffix. The map is one-to-one, hence reversible.
    """
    names = list(dict.fromkeys([tool.name for tool in tools] + _history_tool_names(messages)))
    mapping = {name: name for name in names if _WIRE_SAFE.match(name)}
    taken = set(mapping)
    for name in names:
        if name in mapping:
            continue
        base = _UNSAFE_CHARS.sub("_", name)[:64] or "tool"
        wire, n = base, 2
        while wire in taken:
            suffix = f"_{n}"
            wire, n = base[: 64 - len(suffix)] + suffix, n + 1
        mapping[name] = wire
        taken.add(wire)
    return mapping


def original_tool_name(wire: str, mapping: dict[str, str]) -> str:
    """The name a tool had before wire_tool_names; a name the model made up comes back as it is."""
    return next((original for original, safe in mapping.items() if safe == wire), wire)


def _history_tool_names(messages: list[dict]) -> list[str]:
    names = []
    for message in messages:
        if message.get("role") == "assistant":
            names += [as_tool_call(call).name for call in message.get("tool_calls") or []]
        elif message.get("role") == "tool" and message.get("name"):
            names.append(message["name"])
    return names


def as_tool_call(call: ToolCallRequest | dict) -> ToolCallRequest:
    """Accept history tool calls as dataclasses or as the plain dicts they are stored as."""
    if isinstance(call, ToolCallRequest):
        return call
    return ToolCallRequest(id=str(call["id"]), name=str(call["name"]), arguments=dict(call.get("arguments") or {}))


# --- Failures ------------------------------------------------------------------------------------


def malformed(provider: str, detail: Any) -> ModelError:
    # Not transient: a proxy page or a wrong base URL answers the same way every time.
    return ModelError(f"{provider} returned a malformed response: {str(detail)[:200]!r}", transient=False)


# --- Transcription ------------------------------------------------------------------------------


def transcribe(audio: bytes, *, filename: str, content_type: str, api_key: str | None = None) -> tuple[str, dict]:
    """Speech to text through an OpenAI-compatible `/audio/transcriptions` endpoint (TRANSCRIPTION_*
    settings; by default the `openai` provider's base URL and key with whisper-1), with the `openai` SDK.
    `api_key`: an organization's own key instead of the platform's. Returns the text and what the
    provider reported using: `{"seconds": …}` (whisper-1 bills by duration) and/or
    `{"input_tokens": …, "output_tokens": …}` (token-billed models such as gpt-4o-transcribe)."""
    from .sdk import json_body, model_errors, openai_client_for, timeout

    base_url = settings.TRANSCRIPTION_BASE_URL or settings.OPENAI_BASE_URL
    key = api_key or settings.TRANSCRIPTION_API_KEY or settings.OPENAI_API_KEY
    if not key:
        raise ModelError("no key for transcription (TRANSCRIPTION_API_KEY or OPENAI_API_KEY)", transient=False)
    client, headers = openai_client_for(base_url, key)
    with model_errors("transcription"):
        raw = client.audio.transcriptions.with_raw_response.create(
            extra_headers=headers, model=settings.TRANSCRIPTION_MODEL, response_format="json", timeout=timeout(),
            file=(filename, audio, content_type or "application/octet-stream"),
        )
    body = json_body("transcription", raw)
    text = body.get("text")
    if not isinstance(text, str):
        raise malformed("transcription", text)
    return text.strip(), _transcription_usage(body.get("usage"))


def _transcription_usage(usage) -> dict:
    if not isinstance(usage, dict):
        return {}
    found = {name: usage.get(name) for name in ("seconds", "input_tokens", "output_tokens")}
    return {name: value for name, value in found.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0}
