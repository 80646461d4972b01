"""The neutral types of a model call, in a module of their own: the adapters, the tools and the
runtime import them without importing the package that dispatches to the adapters."""

from dataclasses import dataclass, field


@dataclass
class ToolSpec:
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments


@dataclass
class ToolCallRequest:
    id: str
    name: str  # the original tool name, e.g. "whatsapp.send", never the wire-safe one
    arguments: dict


@dataclass
class ModelReply:
    text: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0


class ModelError(Exception):
    """A failed model call. `transient` tells the caller whether trying again can help."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None, status: int = 0):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.status = status  # HTTP status; 0 when no response arrived or the call was never made
