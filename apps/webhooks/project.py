"""Project webhook events (`whatsapp.phone_number.created` / `.deleted`), processed in a task."""

from apps.kapso.payloads import PHONE_NUMBER_CREATED, PHONE_NUMBER_DELETED, PayloadError
from apps.whatsapp import services as whatsapp

PROJECT_EVENTS = {PHONE_NUMBER_CREATED, PHONE_NUMBER_DELETED}


def unwrap_project_payload(body: object, event_header: str | None) -> tuple[str, dict]:
    """Kapso sends the bare payload with the event in a header; its docs show `{event, data}`.
    Both are accepted (docs/kapso.md §2.4)."""
    if not isinstance(body, dict):
        raise PayloadError("the body must be a JSON object")
    if isinstance(body.get("event"), str) and isinstance(body.get("data"), dict):
        return event_header or body["event"], body["data"]
    event = event_header or body.get("event") or body.get("type")
    if not isinstance(event, str) or not event:
        raise PayloadError("the event name is missing (no X-Webhook-Event header)")
    return event, body


def customer_id_of(payload: dict) -> str:
    """`customer.id`, or "" when the payload has no customer object."""
    customer = payload.get("customer")
    return str(customer.get("id") or "") if isinstance(customer, dict) else ""


def project_event_apply(event: str, payload: dict) -> str:
    phone_number_id = str(payload.get("phone_number_id") or "").strip()
    if not phone_number_id:
        raise PayloadError("`phone_number_id` is missing")
    if event == PHONE_NUMBER_CREATED:
        customer_id = customer_id_of(payload)
        connection = whatsapp.connection_complete(customer_id=customer_id, phone_number_id=phone_number_id)
        if connection is None:
            return "No pending connection for this customer"
        return f"Connected {connection.display_phone_number}"
    connection = whatsapp.connection_mark_disconnected(phone_number_id=phone_number_id)
    return "Marked disconnected" if connection else "Unknown number"
