from apps.conversations import selectors

from .base import Tool, ToolContext


def get_status(context: ToolContext, arguments: dict) -> dict:
    connection = context.connection
    window = selectors.window_state(thread=context.thread)
    recent = selectors.recent_outbound(thread=context.thread, limit=10)
    return {
        "connection": {
            "status": connection.status,
            "phone_number": connection.display_phone_number,
            "environment": connection.environment,
        },
        "window": {
            "open": window["open"],
            "closes_at": window["closes_at"].isoformat() if window["closes_at"] else None,
            "seconds_left": window["seconds_left"],
        },
        "recent_outbound": [
            {"at": m.created_at.isoformat(), "text": m.text[:80], "status": m.status,
             **({"error": m.error_text} if m.error_text else {})}
            for m in recent
        ],
    }


TOOL = Tool(
    name="whatsapp.getStatus",
    description=(
        "Check the WhatsApp line's connection status, whether the 24-hour window with this contact is open "
        "(and how long it has left), and the delivery status of recent replies."
    ),
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
    func=get_status,
)
