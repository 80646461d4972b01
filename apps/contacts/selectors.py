"""Reads of contact records."""

import csv
import io
import re

from django.db.models import Exists, OuterRef, Q, QuerySet

from .models import Contact, ContactAttribute


def contact_for_thread(*, thread) -> Contact | None:
    """The record of a WhatsApp thread's contact (by number, else by BSUID)."""
    if thread.contact_phone:
        return Contact.objects.filter(org_id=thread.org_id, phone=thread.contact_phone).first()
    bsuid = getattr(thread, "contact_bsuid", "")
    if bsuid:
        return Contact.objects.filter(org_id=thread.org_id, phone="", bsuid=bsuid).first()
    return None


def contacts_filtered(*, org, q: str = "", attribute: str = "", value: str = "") -> QuerySet:
    contacts = Contact.objects.filter(org=org)
    if q:
        contacts = contacts.filter(Q(name__icontains=q) | Q(phone__contains=q) | Q(bsuid=q))
    if attribute:
        contacts = contacts.filter(attribute_condition(attribute, value))
    return contacts.order_by("-last_seen_at", "-id")


def attribute_condition(attribute: str, value: str) -> Q:
    """Contacts whose attribute equals `value` as typed (compared as text, so "true" and "42" work);
    with no value, those that have the attribute at all. A name that cannot be an attribute matches
    nothing (and is never read as a lookup path: "a__contains")."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", attribute) or "__" in attribute:
        return Q(pk__in=[])
    if value == "":
        return Q(attributes__has_key=attribute)
    if value.lower() in ("true", "false"):
        return Q(**{f"attributes__{attribute}": value.lower() == "true"})
    return Q(**{f"attributes__{attribute}__iexact": value})


def threads_with_contact_attribute(*, org, attribute: str, value: str) -> Q:
    """For the inbox: threads whose contact record matches (conversations.selectors.inbox_threads)."""
    matching = Contact.objects.filter(attribute_condition(attribute, value), org=org, phone=OuterRef("contact_phone"))
    return Q(Exists(matching))


def attributes_of(*, org) -> list[ContactAttribute]:
    return list(ContactAttribute.objects.filter(org=org))


def contacts_csv(*, org) -> str:
    """Every contact of the org with one column per attribute, for a spreadsheet."""
    names = [a.name for a in attributes_of(org=org)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "phone", "bsuid", "last_seen_at", *names])
    for contact in contacts_filtered(org=org).iterator(chunk_size=1000):
        values = [contact.attributes.get(name, "") for name in names]
        row = [contact.name, contact.phone, contact.bsuid, contact.last_seen_at.isoformat() if contact.last_seen_at
               else "", *values]
        writer.writerow([_safe_cell(cell) for cell in row])
    return out.getvalue()


def _safe_cell(value: object) -> str:
    """A cell starting with = + - @ runs as a formula in spreadsheets, and contacts choose their own
    names: such text gets a leading quote. Numbers (+15551234567, -3.5) stay as they are."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not text[1:].replace(".", "").isdigit():
        return "'" + text
    return text
