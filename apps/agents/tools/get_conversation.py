from apps.conversations import selectors
from apps.core.dates import parse_time
from apps.kapso.payloads import normalize_phone

from .base import Tool, ToolContext, ToolError, tool_may_reach

DEFAULT_LIMIT = 20
MAX_LIMIT = 50


def get_conversation(context: ToolContext, arguments: dict) -> dict:
    thread = context.thread
    if arguments.get("phone"):
        phone = normalize_phone(arguments["phone"])
        if phone is None:
            raise ToolError("`phone` must be a phone number in international format")
        if not tool_may_reach(context, phone):
            # Checked before any lookup: the answer does not even tell whether that contact exists.
            raise ToolError("refused: this agent may only read the current conversation")
        thread = selectors.thread_for_phone(connection=context.connection, phone=phone)
        if thread is None:
            return {"contact": phone, "messages": [], "next_before": None}
    limit = arguments.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ToolError(f"`limit` must be an integer from 1 to {MAX_LIMIT}")
    before = None
    if arguments.get("before"):
        before = parse_time(str(arguments["before"]))
        if before is None:
            raise ToolError("`before` must be an ISO 8601 time, as given in `next_before`")
    messages, next_before = selectors.thread_messages_page(thread=thread, limit=limit, before=before)
    return {
        "contact": thread.contact_label,
        "contact_name": thread.contact_name,
        "messages": [
            {"at": m.created_at.isoformat(), "from": m.author, "text": m.text, "status": m.status}
            for m in messages
        ],
        "next_before": next_before.isoformat() if next_before else None,
    }


TOOL = Tool(
    name="whatsapp.getConversation",
    description=(
        "Read recent messages of this conversation, oldest first. Page back with `before` = the `next_before` "
        "of the previous page. `phone` may name another contact on the same WhatsApp line."
    ),
    parameters={
        "type": "object",
        "properties": {
            "phone": {"type": "string", "description": "Optional contact number; defaults to the current contact."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "before": {"type": "string", "description": "Optional cursor from `next_before`."},
        },
        "additionalProperties": False,
    },
    func=get_conversation,
)
