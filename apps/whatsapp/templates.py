"""WhatsApp message templates: synced from the business account through Kapso's Meta proxy
(`GET /{waba_id}/message_templates`, every page; docs/kapso.md §8), and turned into send bodies.

Outside the 24-hour customer-service window WhatsApp accepts only approved templates. Variables
are given as a list, in the order they appear (header text first, then body): for a POSITIONAL
template {{1}}, {{2}}…; for a NAMED one {{first_name}}… in that order.
"""

import logging
import re

from django.db import transaction
from django.utils import timezone

from apps.kapso import client as kapso

from .models import MessageTemplate, WhatsAppConnection

logger = logging.getLogger(__name__)

APPROVED = "APPROVED"
MAX_PAGES = 50  # 5,000 templates; Meta allows far fewer per account
MAX_VARIABLE_CHARS = 1024
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class TemplateInvalid(ValueError):
    """A template send that cannot go out: the message says why, for an operator or a model."""


# --- Sync ------------------------------------------------------------------------------------------


def templates_sync(*, connection: WhatsAppConnection) -> int:
    """Replace the connection's templates with what Kapso lists now. Returns how many there are."""
    if not connection.business_account_id:
        raise TemplateInvalid("The number has no WhatsApp Business Account id yet; reconnect it first.")
    listed, after = [], None
    for _ in range(MAX_PAGES):
        page = kapso.list_templates(business_account_id=connection.business_account_id, after=after)
        listed += [item for item in (page.get("data") or []) if isinstance(item, dict)]
        paging = page.get("paging") or {}
        after = (paging.get("cursors") or {}).get("after")
        if not after or not paging.get("next"):
            break
    now = timezone.now()
    with transaction.atomic():
        kept = [_template_upsert(connection, item, now) for item in listed if item.get("name")]
        MessageTemplate.objects.filter(connection=connection).exclude(pk__in=[t.pk for t in kept]).delete()
    return len(kept)


def _template_upsert(connection: WhatsAppConnection, item: dict, now) -> MessageTemplate:
    language = item.get("language")
    language = language.get("code") if isinstance(language, dict) else language
    template, _ = MessageTemplate.objects.update_or_create(
        connection=connection,
        name=str(item["name"])[:512],
        language=str(language or "")[:16],
        defaults={
            "org_id": connection.org_id,
            "template_id": str(item.get("id") or "")[:64],
            "status": str(item.get("status") or "")[:20],
            "category": str(item.get("category") or "")[:20],
            "parameter_format": str(item.get("parameter_format") or "")[:12],
            "components": item.get("components") if isinstance(item.get("components"), list) else [],
            "synced_at": now,
        },
    )
    return template


# --- Reading a template ------------------------------------------------------------------------------


def _component(template: MessageTemplate, kind: str) -> dict:
    for component in template.components:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == kind:
            return component
    return {}


def _text_variables(component: dict) -> list[str]:
    if component.get("format") not in (None, "TEXT"):
        return []
    return _VARIABLE.findall(str(component.get("text") or ""))


def template_variables(template: MessageTemplate) -> list[str]:
    """The variables to fill, in order: the header's (when it is text), then the body's."""
    return _text_variables(_component(template, "HEADER")) + _text_variables(_component(template, "BODY"))


def template_preview(template: MessageTemplate, values: list[str]) -> str:
    """The message as the contact will read it: header, body and footer, variables filled in."""
    names = template_variables(template)
    filled = dict(zip(names, values, strict=False))
    parts = []
    for kind in ("HEADER", "BODY", "FOOTER"):
        component = _component(template, kind)
        text = str(component.get("text") or "") if component.get("format") in (None, "TEXT") else ""
        if text:
            parts.append(_VARIABLE.sub(lambda m: filled.get(m.group(1)) or m.group(0), text))
    return "\n".join(parts) or template.name


def approved_templates(*, connection: WhatsAppConnection) -> list[MessageTemplate]:
    return list(MessageTemplate.objects.filter(connection=connection, status=APPROVED))


# --- Sending -------------------------------------------------------------------------------------------


def template_payload(*, connection: WhatsAppConnection, name: str, language: str, variables: list) -> tuple[dict, str]:
    """The send body's {"type": "template", "template": ...} and its preview text, for an approved
    template of this connection with exactly its variables. TemplateInvalid says what is wrong."""
    template = MessageTemplate.objects.filter(connection=connection, name=name, language=language).first()
    if template is None:
        known = ", ".join(f"{t.name} ({t.language})" for t in approved_templates(connection=connection)) or "none"
        raise TemplateInvalid(
            f"There is no template {name!r} in language {language!r} on this number. Approved templates: {known}."
        )
    if template.status != APPROVED:
        raise TemplateInvalid(
            f"The template {name!r} is {template.status.lower()}, not approved; WhatsApp sends only approved templates."
        )
    names = template_variables(template)
    values = _values(variables, len(names), name)
    header_names = _text_variables(_component(template, "HEADER"))
    components = []
    for kind, part in (("header", values[: len(header_names)]), ("body", values[len(header_names) :])):
        if part:
            start = 0 if kind == "header" else len(header_names)
            components.append(
                {
                    "type": kind,
                    "parameters": [_parameter(template, names[start + i], value) for i, value in enumerate(part)],
                }
            )
    body = {"name": template.name, "language": {"code": template.language}, "components": components}
    return {"type": "template", "template": body}, template_preview(template, values)


def _values(variables: object, expected: int, name: str) -> list[str]:
    if not isinstance(variables, list) or not all(isinstance(v, str | int | float) for v in variables):
        raise TemplateInvalid("`variables` must be a list of texts.")
    values = [str(v).strip() for v in variables]
    if len(values) != expected:
        raise TemplateInvalid(f"The template {name!r} has {expected} variable(s); {len(values)} were given.")
    for index, value in enumerate(values, start=1):
        if not value or len(value) > MAX_VARIABLE_CHARS:
            raise TemplateInvalid(
                f"Variable {index} must be a non-empty text of at most {MAX_VARIABLE_CHARS} characters."
            )
    return values


def _parameter(template: MessageTemplate, variable: str, value: str) -> dict:
    parameter = {"type": "text", "text": value}
    if template.parameter_format == "NAMED" or not variable.isdigit():
        parameter["parameter_name"] = variable  # NAMED templates need the name at send time (Meta)
    return parameter
