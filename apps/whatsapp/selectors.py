from .models import WhatsAppConnection


def connection_for_webhook(*, phone_number_id: str) -> WhatsAppConnection | None:
    """The connection a message webhook is addressed to, or None (then no secret: fail closed)."""
    return WhatsAppConnection.objects.filter(phone_number_id=phone_number_id).select_related("org").first()
