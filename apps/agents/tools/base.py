"""What every tool module needs, in a module of its own so the tools and their registry
(`tools/__init__.py`) import it without importing each other."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.agents.llm.types import ToolSpec


class ToolError(Exception):
    """Bad arguments or a refused action; the message goes back to the model as the result."""


@dataclass
class PendingSend:
    thread: Any  # conversations.Thread
    text: str  # how it reads in the thread
    payload: dict | None = None  # a template, an interactive message or media (conversations.Message.payload)


@dataclass
class HandoffRequest:
    reason: str
    message: str


@dataclass
class ToolContext:
    org: Any
    connection: Any
    thread: Any
    run: Any
    agent: Any
    pending_sends: list[PendingSend] = field(default_factory=list)
    handoff: HandoffRequest | None = None  # conversation.handoff: applied when the turn is written
    passages: list[dict] = field(default_factory=list)  # knowledge passages the model was given


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict
    func: Callable[[ToolContext, dict], dict]

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


def tool_may_reach(context: ToolContext, phone: str) -> bool:
    """The current contact, or a number the operator put in the agent's allowed_numbers."""
    return phone == context.thread.contact_phone or phone in (context.agent.allowed_numbers or [])

