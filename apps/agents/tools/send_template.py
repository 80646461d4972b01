"""whatsapp.sendTemplate: an approved template to the current contact, allowed outside the window."""

from apps.whatsapp.templates import TemplateInvalid, approved_templates, template_payload, template_variables

from .base import PendingSend, Tool, ToolContext, ToolError
from .send import send_check

MAX_LISTED = 20


def send_template(context: ToolContext, arguments: dict) -> dict:
    name, language = arguments.get("name"), arguments.get("language")
    if not isinstance(name, str) or not isinstance(language, str):
        raise ToolError("`name` and `language` are required texts")
    send_check(context, context.thread, template=True)
    if context.thread.connection is None:
        raise ToolError("refused: this conversation is not on WhatsApp, so it has no templates")
    try:
        payload, preview = template_payload(
            connection=context.thread.connection, name=name, language=language, variables=arguments.get("variables", [])
        )
    except TemplateInvalid as error:
        raise ToolError(str(error)) from error
    context.pending_sends.append(PendingSend(thread=context.thread, text=preview, payload=payload))
    return {"queued": True, "template": name, "language": language, "preview": preview}


def templates_sentence(connection) -> str:
    """The number's approved templates and their variables, for the tool's description."""
    templates = approved_templates(connection=connection) if connection is not None else []
    if not templates:
        return "This number has no approved templates yet."
    listed = [
        f"{t.name} ({t.language}; variables: {', '.join(template_variables(t)) or 'none'})"
        for t in templates[:MAX_LISTED]
    ]
    return "Approved templates: " + "; ".join(listed) + "."


TOOL = Tool(
    name="whatsapp.sendTemplate",
    description=(
        "Send an approved WhatsApp template to the current contact. Templates are the only messages WhatsApp "
        "allows when the 24-hour window is closed (the contact last wrote more than 24 hours ago). Give the "
        "variables in order."
    ),
    parameters={
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "The template's name."},
            "language": {"type": "string", "description": "The template's language code, e.g. en_US."},
            "variables": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Values of the template's variables, in order.",
            },
        },
        "required": ["name", "language"],
        "additionalProperties": False,
    },
    func=send_template,
)
