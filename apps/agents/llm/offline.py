"""A deterministic stand-in model for demos and tests: no key, no network, and it says what it is.

It echoes the last user message, and shows the tool loop end to end: asked about "status" with
whatsapp.getStatus on offer, it calls that tool, then summarises the result it got back.
"""

import json
import re

from . import text_of
from .types import ModelReply, ToolCallRequest, ToolSpec

STATUS_TOOL = "whatsapp.getStatus"
INTRO = "[Demo bot] This is Switchboard's offline demo model."
_STATUS_WORD = re.compile(r"\bstatus\b", re.IGNORECASE)
_MAX_ECHO = 300
_MAX_RESULT = 300


def complete(model: dict, system: str, messages: list[dict], tools: list[ToolSpec]) -> ModelReply:
    last_user = _last_user_index(messages)
    since_user = messages[last_user + 1 :] if last_user is not None else messages
    results = [m for m in since_user if m.get("role") == "tool"]
    if results:
        return ModelReply(text=_status_summary(results[-1]), tool_calls=[])
    user_text = text_of(messages[last_user].get("content") or "") if last_user is not None else ""
    if _STATUS_WORD.search(user_text) and any(tool.name == STATUS_TOOL for tool in tools):
        # The id depends only on the conversation, so the same input always yields the same reply.
        call = ToolCallRequest(id=f"offline-call-{len(messages)}", name=STATUS_TOOL, arguments={})
        return ModelReply(text="", tool_calls=[call])
    return ModelReply(text=_echo(user_text), tool_calls=[])


def _last_user_index(messages: list[dict]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)


def _echo(user_text: str) -> str:
    if not user_text:
        return f"{INTRO} Connect a real model (OpenAI, Anthropic, …) to get real answers."
    quoted = user_text if len(user_text) <= _MAX_ECHO else user_text[:_MAX_ECHO] + "…"
    return f"{INTRO} You said: “{quoted}”. Connect a real model (OpenAI, Anthropic, …) to get real answers."


def _status_summary(result: dict) -> str:
    name = result.get("name") or "a tool"
    return f"{INTRO} I checked the status with {name}. It answered: {_render(result.get('content') or '')}"


def _render(content: str) -> str:
    """The tool's JSON result on one compact line, shortened so it fits in a chat message."""
    try:
        content = json.dumps(json.loads(content), ensure_ascii=False, separators=(", ", ": "))
    except ValueError:
        pass
    return content if len(content) <= _MAX_RESULT else content[:_MAX_RESULT] + "…"
