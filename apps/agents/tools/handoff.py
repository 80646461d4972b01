from apps.conversations.models import HandoffReason

from .base import HandoffRequest, Tool, ToolContext, ToolError

MAX_MESSAGE_CHARACTERS = 1000


def handoff(context: ToolContext, arguments: dict) -> dict:
    reason, message = arguments.get("reason"), arguments.get("message")
    if reason not in HandoffReason.values:
        raise ToolError(f"`reason` must be one of: {', '.join(HandoffReason.values)}")
    if not isinstance(message, str) or not message.strip():
        raise ToolError("`message` is required: tell the contact that a person will take over")
    if len(message) > MAX_MESSAGE_CHARACTERS:
        raise ToolError(f"`message` is too long (at most {MAX_MESSAGE_CHARACTERS} characters)")
    context.handoff = HandoffRequest(reason=reason, message=message.strip())
    return {"handed_off": True, "reason": reason,
            "note": "Your message goes to the contact and a person takes over; the turn ends here."}


TOOL = Tool(
    name="conversation.handoff",
    description=(
        "Hand this conversation to a person of the team: when the contact asks for a person, when you cannot "
        "answer from what you know, for complaints, purchases and sensitive matters. The contact receives "
        "`message`, you stop answering, and the team is notified. This ends your turn."
    ),
    parameters={
        "type": "object",
        "properties": {
            "reason": {"type": "string", "enum": list(HandoffReason.values), "description": "Why a person is needed."},
            "message": {"type": "string", "description": "What to tell the contact, e.g. that a person will reply."},
        },
        "required": ["reason", "message"],
        "additionalProperties": False,
    },
    func=handoff,
)
