"""contact.get / contact.update: the current contact's record, and only the attributes the
organization lets the agent write."""

from django.db import transaction

from apps.contacts import services as contacts
from apps.contacts.models import ContactAttribute
from apps.contacts.selectors import contact_for_thread

from .base import Tool, ToolContext, ToolError


def _contact(context: ToolContext):
    contact = contact_for_thread(thread=context.thread)
    if contact is None:
        raise ToolError("there is no contact record for this conversation yet")
    return contact


def _attributes(context: ToolContext) -> list[dict]:
    return [{"name": a.name, "type": a.type, "agent_writable": a.agent_writable}
            for a in ContactAttribute.objects.filter(org=context.org)]


def get(context: ToolContext, arguments: dict) -> dict:
    contact = _contact(context)
    return {"name": contact.name, "phone": contact.phone or None, "attributes": contact.attributes,
            "attribute_definitions": _attributes(context)}


def update(context: ToolContext, arguments: dict) -> dict:
    attributes = arguments.get("attributes")
    if not isinstance(attributes, dict) or not attributes:
        raise ToolError("`attributes` is required: an object of attribute names and values")
    contact = _contact(context)
    try:
        with transaction.atomic():
            contacts.contact_update(contact=contact, attributes=attributes, by_agent=True)
    except contacts.ContactInvalid as error:
        raise ToolError(str(error)) from None
    return {"updated": sorted(attributes), "attributes": contact.attributes}


GET = Tool(
    name="contact.get",
    description="Read the current contact's record: name, number and the attributes your team keeps "
                "(e.g. lead status, email, plan), with which of them you may change.",
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
    func=get,
)

UPDATE = Tool(
    name="contact.update",
    description="Record what you learned about the current contact in their record, e.g. "
                '{"attributes": {"lead_status": "qualified", "email": "ana@example.com"}}. Only attributes '
                "marked agent_writable (see contact.get); null removes a value.",
    parameters={
        "type": "object",
        "properties": {"attributes": {"type": "object", "description": "Attribute names and their new values."}},
        "required": ["attributes"],
        "additionalProperties": False,
    },
    func=update,
)
