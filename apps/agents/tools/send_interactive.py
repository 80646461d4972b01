"""whatsapp.sendButtons and whatsapp.sendList: interactive messages to the current contact, in the
Meta shape Kapso documents, within WhatsApp's limits (docs/kapso.md §5.1, §5.3)."""

from .base import PendingSend, Tool, ToolContext, ToolError
from .send import send_check

MAX_BODY = 1024
MAX_BUTTONS, MAX_BUTTON_TITLE, MAX_ID = 3, 20, 200
MAX_ROWS, MAX_SECTIONS, MAX_ROW_TITLE, MAX_DESCRIPTION, MAX_LIST_BUTTON = 10, 10, 24, 72, 20


def _text(value: object, name: str, limit: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value.strip()) > limit:
        raise ToolError(f"`{name}` must be a{' non-empty' if required else ''} text of at most {limit} characters")
    return value.strip()


def _option(item: object, where: str, title_limit: int) -> dict:
    if not isinstance(item, dict):
        raise ToolError(f"each of `{where}` must be an object with `id` and `title`")
    return {
        "id": _text(item.get("id"), f"{where}[].id", MAX_ID),
        "title": _text(item.get("title"), f"{where}[].title", title_limit),
    }


def send_buttons(context: ToolContext, arguments: dict) -> dict:
    body = _text(arguments.get("body"), "body", MAX_BODY)
    buttons = arguments.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        raise ToolError(f"`buttons` must list 1 to {MAX_BUTTONS} buttons")
    options = [_option(button, "buttons", MAX_BUTTON_TITLE) for button in buttons]
    if len({o["id"] for o in options}) != len(options):
        raise ToolError("each button needs its own `id`")
    send_check(context, context.thread)
    interactive = {
        "type": "button",
        "body": {"text": body},
        "action": {"buttons": [{"type": "reply", "reply": option} for option in options]},
    }
    text = body + "\n" + " · ".join(f"[{o['title']}]" for o in options)
    context.pending_sends.append(
        PendingSend(thread=context.thread, text=text, payload={"type": "interactive", "interactive": interactive})
    )
    return {"queued": True, "buttons": [o["id"] for o in options]}


def send_list(context: ToolContext, arguments: dict) -> dict:
    body = _text(arguments.get("body"), "body", MAX_BODY)
    button = _text(arguments.get("button"), "button", MAX_LIST_BUTTON)
    sections = arguments.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= MAX_SECTIONS:
        raise ToolError(f"`sections` must list 1 to {MAX_SECTIONS} sections")
    wire, ids = [], []
    for section in sections:
        if not isinstance(section, dict) or not isinstance(section.get("rows"), list) or not section["rows"]:
            raise ToolError("each section needs `rows`, a non-empty list")
        rows = []
        for row in section["rows"]:
            option = _option(row, "rows", MAX_ROW_TITLE)
            description = _text(row.get("description"), "rows[].description", MAX_DESCRIPTION, required=False)
            rows.append({**option, **({"description": description} if description else {})})
        title = _text(section.get("title"), "sections[].title", MAX_ROW_TITLE, required=len(sections) > 1)
        wire.append({**({"title": title} if title else {}), "rows": rows})
        ids += [row["id"] for row in rows]
    if len(ids) > MAX_ROWS or len(set(ids)) != len(ids):
        raise ToolError(f"a list has at most {MAX_ROWS} rows in all, each with its own `id`")
    send_check(context, context.thread)
    interactive = {"type": "list", "body": {"text": body}, "action": {"button": button, "sections": wire}}
    text = body + "\n" + " · ".join(f"[{row['title']}]" for section in wire for row in section["rows"])
    context.pending_sends.append(
        PendingSend(thread=context.thread, text=text, payload={"type": "interactive", "interactive": interactive})
    )
    return {"queued": True, "rows": ids}


_OPTION = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "title": {"type": "string"}},
    "required": ["id", "title"],
    "additionalProperties": False,
}

BUTTONS = Tool(
    name="whatsapp.sendButtons",
    description=(
        "Send the current contact a message with up to 3 reply buttons (titles of at most 20 characters). "
        "The contact's tap comes back as their next message, with the button's title and id. "
        "Refused outside the 24-hour window."
    ),
    parameters={
        "type": "object",
        "properties": {
            "body": {"type": "string", "description": "The message text above the buttons."},
            "buttons": {"type": "array", "items": _OPTION, "minItems": 1, "maxItems": MAX_BUTTONS},
        },
        "required": ["body", "buttons"],
        "additionalProperties": False,
    },
    func=send_buttons,
)

LIST = Tool(
    name="whatsapp.sendList",
    description=(
        "Send the current contact a list message: a button that opens sections of rows to choose from "
        "(at most 10 rows in all; row titles of at most 24 characters). The choice comes back as the contact's "
        "next message, with the row's title and id. Refused outside the 24-hour window."
    ),
    parameters={
        "type": "object",
        "properties": {
            "body": {"type": "string", "description": "The message text."},
            "button": {"type": "string", "description": "The label of the button that opens the list."},
            "sections": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "rows": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "title": {"type": "string"},
                                    "description": {"type": "string"},
                                },
                                "required": ["id", "title"],
                                "additionalProperties": False,
                            },
                        },
                    },
                    "required": ["rows"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["body", "button", "sections"],
        "additionalProperties": False,
    },
    func=send_list,
)
