from .models import WhatsAppConnection


def connection_for_webhook(*, phone_number_id: str) -> WhatsAppConnection | None:
    """The connection a message webhook is addressed to, or None (then no secret: fail closed).

    On every delivery, so one query: the organization comes along (the receiver logs its slug),
    and phone_number_id is unique, so no ORDER BY is needed."""
    rows = list(WhatsAppConnection.objects.filter(phone_number_id=phone_number_id).select_related("org")[:1])
    return rows[0] if rows else None
