"""Writes of contact records: created or refreshed on every inbound message; changed by operators
(dashboard, API) and by the agent (contact.update, only attributes marked agent_writable)."""

import re
import uuid
from datetime import date

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db import connection as db
from django.utils import timezone

from .models import AttributeType, Contact, ContactAttribute

MAX_TEXT = 500


class ContactInvalid(ValueError):
    """A change that cannot be saved; `field` names the culprit, nothing was written."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


# One statement per message, on the hot path of the webhook. Known by number when there is one,
# else by BSUID; the newest non-empty name wins.
_UPSERT = """
INSERT INTO contacts_contact (id, org_id, phone, bsuid, name, attributes, last_seen_at, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, '{{}}', %s, now(), now())
ON CONFLICT {target} DO UPDATE SET
    name = COALESCE(NULLIF(EXCLUDED.name, ''), contacts_contact.name),
    bsuid = COALESCE(NULLIF(EXCLUDED.bsuid, ''), contacts_contact.bsuid),
    last_seen_at = GREATEST(contacts_contact.last_seen_at, EXCLUDED.last_seen_at),
    updated_at = now()
"""
_BY_PHONE = _UPSERT.format(target="(org_id, phone) WHERE phone <> ''")
_BY_BSUID = _UPSERT.format(target="(org_id, bsuid) WHERE phone = '' AND bsuid <> ''")


def contacts_touch(*, org_id, messages) -> None:
    """Create or refresh the record of each message's contact (messages: kapso.payloads.InboundMessage)."""
    now = timezone.now()
    with db.cursor() as cursor:
        for message in messages:
            phone, bsuid = message.contact.phone or "", message.contact.bsuid or ""
            if not phone and not bsuid:
                continue
            sql = _BY_PHONE if phone else _BY_BSUID
            cursor.execute(sql, [uuid.uuid4(), org_id, phone, bsuid, message.contact_name or "", now])


def attribute_create(*, org, name: str, type: str = AttributeType.TEXT, agent_writable: bool = False
                     ) -> ContactAttribute:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name or ""):
        raise ContactInvalid("name", "Use lowercase letters, digits and _ (up to 40, starting with a letter), "
                                     "like lead_status.")
    if type not in AttributeType.values:
        raise ContactInvalid("type", f"`type` must be one of: {', '.join(AttributeType.values)}.")
    attribute = ContactAttribute(org=org, name=name, type=type, agent_writable=agent_writable)
    try:
        with transaction.atomic():
            attribute.save()
    except IntegrityError:
        raise ContactInvalid("name", f"There is already an attribute named {name!r}.") from None
    return attribute


def contact_update(*, contact: Contact, name: str | None = None, attributes: dict | None = None,
                   by_agent: bool = False) -> Contact:
    """Set the name and/or attributes (a value of null removes one). The agent may set only the
    attributes marked agent_writable and never the name. All or nothing."""
    changes = dict(contact.attributes)
    if attributes:
        defined = {a.name: a for a in ContactAttribute.objects.filter(org_id=contact.org_id, name__in=attributes)}
        for key, value in attributes.items():
            attribute = defined.get(key)
            if attribute is None:
                raise ContactInvalid(key, f"There is no contact attribute named {key!r} in this organization.")
            if by_agent and not attribute.agent_writable:
                raise ContactInvalid(key, f"refused: the agent may not change {key!r}; only people of the team can.")
            if value is None:
                changes.pop(key, None)
            else:
                changes[key] = attribute_value(attribute, value)
    if name is not None:
        if by_agent:
            raise ContactInvalid("name", "refused: the agent may not rename the contact.")
        contact.name = name.strip()[:200]
    contact.attributes = changes
    contact.save(update_fields=["name", "attributes", "updated_at"])
    return contact


def attribute_value(attribute: ContactAttribute, value: object) -> object:
    """The value in its stored form, or ContactInvalid saying what the attribute takes."""
    kind = attribute.type
    if kind == AttributeType.BOOLEAN and isinstance(value, bool):
        return value
    if kind == AttributeType.BOOLEAN and isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
        return value.lower() in ("yes", "true")
    if kind == AttributeType.NUMBER and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == AttributeType.NUMBER and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            return int(number) if number.is_integer() else number
    if kind == AttributeType.DATE and isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    if kind == AttributeType.EMAIL and isinstance(value, str):
        try:
            validate_email(value.strip())
            return value.strip().lower()
        except ValidationError:
            pass
    if kind == AttributeType.TEXT and isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        if len(text) <= MAX_TEXT:
            return text
    raise ContactInvalid(attribute.name, _expected(attribute))


def _expected(attribute: ContactAttribute) -> str:
    what = {"text": f"text of at most {MAX_TEXT} characters", "number": "a number", "boolean": "true or false",
            "date": "a date like 2026-12-31", "email": "an email address"}[attribute.type]
    return f"{attribute.name!r} takes {what}."
