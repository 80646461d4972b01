from django.conf import settings

from apps.conversations import selectors
from apps.conversations.text import WHATSAPP_TEXT_LIMIT
from apps.kapso.payloads import normalize_phone

from .base import PendingSend, Tool, ToolContext, ToolError, tool_may_reach

MAX_TOTAL_CHARACTERS = WHATSAPP_TEXT_LIMIT * 4


def send(context: ToolContext, arguments: dict) -> dict:
    text = arguments.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ToolError("`text` is required and must be a non-empty string")
    if len(text) > MAX_TOTAL_CHARACTERS:
        raise ToolError(f"`text` is too long (at most {MAX_TOTAL_CHARACTERS} characters)")
    thread = _target_thread(context, arguments.get("to"))
    send_check(context, thread)
    context.pending_sends.append(PendingSend(thread=thread, text=text.strip()))
    return {"queued": True, "to": thread.contact_label, "characters": len(text.strip())}


def send_check(context: ToolContext, thread, *, template: bool = False) -> None:
    """What every sending tool checks: the per-turn cap, and (but for templates) the 24-hour window."""
    if len(context.pending_sends) >= settings.MAX_TOOL_SENDS_PER_TURN:
        # A contact who talks the model into a loop of sends gets at most this many messages a turn.
        raise ToolError(f"refused: at most {settings.MAX_TOOL_SENDS_PER_TURN} messages can be sent in one turn")
    if thread.connection_id is None:
        return  # the playground: nothing reaches WhatsApp
    reason = selectors.reply_blocked_reason(thread=thread, template=template)
    if reason:
        if not template and not selectors.window_state(thread=thread)["open"]:
            reason = ("the 24-hour customer-service window with this contact is closed, so WhatsApp allows only "
                      "approved templates (whatsapp.sendTemplate), not free text")
        raise ToolError(f"refused: {reason}")


def _target_thread(context: ToolContext, to: object):
    if to in (None, ""):
        return context.thread
    phone = normalize_phone(to)
    if phone is None:
        raise ToolError("`to` must be a phone number in international format, like +15551234567")
    if phone == context.thread.contact_phone:
        return context.thread
    if not tool_may_reach(context, phone):
        raise ToolError("refused: this agent may only message the current contact")
    thread = selectors.thread_for_phone(connection=context.connection, phone=phone)
    if thread is None:
        raise ToolError("refused: there is no conversation with that number on this WhatsApp line")
    return thread


TOOL = Tool(
    name="whatsapp.send",
    description=(
        "Send a WhatsApp text message now, before your final answer (for example to acknowledge a long task). "
        "Goes to the current contact unless `to` names another number. Refused outside the 24-hour window."
    ),
    parameters={
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "The message text."},
            "to": {"type": "string", "description": "Optional phone number in E.164 format; defaults to the contact."},
        },
        "required": ["text"],
        "additionalProperties": False,
    },
    func=send,
)
