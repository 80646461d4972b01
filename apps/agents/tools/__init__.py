"""The agent's tools: plain functions in a registry, each with a JSON schema (docs/architecture.md §5).

A tool receives a ToolContext that carries the org, connection, thread and run, and queries only
through that org. Tools never send anything themselves: `whatsapp.send` adds to the turn's
pending sends, which are written to the outbox with the turn's answer in one transaction, so a
turn that dies half-way sends nothing and its retry sends once.
"""

from apps.agents.llm.types import ToolSpec

from . import (
    contact,
    get_conversation,
    get_status,
    handoff,
    knowledge_search,
    send,
    send_interactive,
    send_media,
    send_template,
)
from .base import HandoffRequest, PendingSend, Tool, ToolContext, ToolError, tool_may_reach

__all__ = ["HandoffRequest", "PendingSend", "Tool", "ToolContext", "ToolError", "tool_may_reach"]


def _registry() -> dict[str, Tool]:
    tools = (send.TOOL, get_conversation.TOOL, get_status.TOOL, handoff.TOOL, knowledge_search.TOOL, contact.GET,
             contact.UPDATE, send_template.TOOL, send_media.TOOL, send_interactive.BUTTONS, send_interactive.LIST)
    return {tool.name: tool for tool in tools}


def all_tools() -> dict[str, Tool]:
    return _registry()


TOOL_NAMES = tuple(_registry())  # the names, defined once: by the tools themselves


# Tools that can reach a contact other than the current one, and only the agent's allowed numbers.
REACHES_OTHER_CONTACTS = ("whatsapp.send", "whatsapp.getConversation")


def tool_specs(names: list[str], *, allowed_numbers: list[str] | None = None, connection=None) -> list[ToolSpec]:
    """The specs the model sees. The tools that can reach another contact say which numbers they may
    reach, so the model is told the rule instead of discovering it by refusal."""
    registry = _registry()
    specs = []
    for name in names:
        if name not in registry:
            continue
        spec = registry[name].spec()
        if name in REACHES_OTHER_CONTACTS:
            spec.description += " " + _reach_sentence(allowed_numbers or [])
        if name == send_template.TOOL.name:
            spec.description += " " + send_template.templates_sentence(connection)
        specs.append(spec)
    return specs


def _reach_sentence(allowed_numbers: list[str]) -> str:
    if not allowed_numbers:
        return "It works only with the current contact; any other number is refused."
    return f"Besides the current contact, only these numbers are allowed: {', '.join(allowed_numbers)}."


def tool_run(name: str, arguments: dict, context: ToolContext) -> dict:
    tool = _registry().get(name)
    if tool is None:
        raise ToolError(f"unknown tool {name!r}")
    if name not in (context.agent.tools or []):
        raise ToolError(f"the tool {name!r} is not enabled for this agent")
    if not isinstance(arguments, dict):
        raise ToolError("arguments must be a JSON object")
    return tool.func(context, arguments)
