"""Kapso's wire shapes, built from sandbox rows (docs/kapso.md §2–6; tests/fixtures/kapso).

Webhook payloads follow the documented v2 samples key for key; API resources follow the OpenAPI
schemas. Timestamps: unix-second strings in messages, ISO 8601 (UTC, "Z") everywhere else.
"""

import hashlib
import json
from datetime import UTC, datetime

from .models import Conversation, Customer, Delivery, Message, PhoneNumber, SetupLink, Webhook

PROJECT_ID = "5a4d3c2b-1e0f-4a9b-8c7d-5a4d3c2b1e0f"  # the sandbox's one project
MEDIA_TYPES = {"image", "video", "audio", "document", "sticker"}


def compact(payload: object) -> bytes:
    """The bytes Kapso sends: compact JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def unix(value: datetime) -> str:
    return str(int(value.timestamp()))


def plus(digits: str) -> str:
    return f"+{digits}"


# --- Platform API resources -----------------------------------------------------------------


def customer_resource(customer: Customer) -> dict:
    return {"id": str(customer.id), "name": customer.name, "external_customer_id": customer.external_customer_id,
            "created_at": iso(customer.created_at), "updated_at": iso(customer.updated_at)}


def setup_link_resource(link: SetupLink, *, with_token: bool = False) -> dict:
    options = link.options
    data = {
        "id": str(link.id),
        "status": link.status,
        "created_at": iso(link.created_at),
        "expires_at": iso(link.expires_at),
        "url": link.url,
        "success_redirect_url": options.get("success_redirect_url"),
        "failure_redirect_url": options.get("failure_redirect_url"),
        "allowed_origins": options.get("allowed_origins", []),
        "allowed_connection_types": options.get("allowed_connection_types", ["coexistence", "dedicated"]),
        "meta_billing_mode": options.get("meta_billing_mode", "customer_managed"),
        "provision_phone_number": bool(options.get("provision_phone_number", False)),
        "phone_number_area_code": options.get("phone_number_area_code"),
        "phone_number_country_isos": options.get("phone_number_country_isos", ["US"]),
        "reconnect_phone_number": options.get("reconnect_phone_number"),
        "theme_config": options.get("theme_config", {}),
        "language": options.get("language"),
        "whatsapp_setup_status": link.whatsapp_setup_status,
        "whatsapp_setup_error": link.whatsapp_setup_error,
    }
    if with_token:  # returned once, by the create call only
        data["token"] = link.token
    if data["provision_phone_number"] and link.phone_number_id:
        number = link.phone_number
        data["provisioned_phone_number"] = {
            "id": str(number.internal_id), "phone_number": number.normalized, "status": "active",
            "area_code": number.normalized[1:4], "country_iso": "US", "country_dial_code": "1",
            "display_number": number.display_phone_number,
        }
    return data


def phone_number_resource(number: PhoneNumber) -> dict:
    return {
        "id": number.phone_number_id,
        "internal_id": str(number.internal_id),
        "phone_number_id": number.phone_number_id,
        "name": number.name,
        "business_account_id": number.business_account_id,
        "is_coexistence": number.is_coexistence,
        "inbound_processing_enabled": True,
        "calls_enabled": False,
        "webhook_verified_at": iso(number.created_at),
        "created_at": iso(number.created_at),
        "updated_at": iso(number.updated_at),
        "display_name": number.name,
        "display_phone_number": number.display_phone_number,
        "display_phone_number_normalized": number.normalized,
        "verified_name": number.name,
        "quality_rating": "GREEN",
        "throughput_tier": "TIER_10K",
        "whatsapp_business_manager_messaging_limit": "10000",
        "customer_id": str(number.customer_id) if number.customer_id else None,
        "code_verification_status": "COMPLETED",
        "name_status": "APPROVED",
        "status": "CONNECTED",
        "is_official_business_account": False,
        "is_pin_enabled": False,
    }


def webhook_resource(webhook: Webhook) -> dict:
    return {
        "id": str(webhook.id),
        "url": webhook.url,
        "kind": webhook.kind,
        "events": webhook.events,
        "active": webhook.active,
        "secret_key": webhook.secret_key,
        "headers": webhook.headers,
        "buffer_enabled": webhook.buffer_enabled,
        "buffer_window_seconds": webhook.buffer_window_seconds,
        "max_buffer_size": webhook.max_buffer_size,
        "buffer_events": webhook.buffer_events,
        "inactivity_minutes": webhook.inactivity_minutes,
        "payload_version": webhook.payload_version,
        "project_id": PROJECT_ID,
        "phone_number_id": webhook.phone_number.phone_number_id if webhook.phone_number_id else None,
        "created_at": iso(webhook.created_at),
        "updated_at": iso(webhook.updated_at),
    }


def delivery_resource(delivery: Delivery) -> dict:
    return {
        "id": str(delivery.id), "event": delivery.event, "status": delivery.status,
        "response_status": delivery.response_status, "delivered_at": iso(delivery.delivered_at),
        "failed_at": iso(delivery.failed_at), "last_attempt_at": iso(delivery.last_attempt_at),
        "attempt_count": delivery.attempt_count, "created_at": iso(delivery.created_at),
        "webhook_id": str(delivery.webhook_id), "webhook_url": delivery.webhook.url,
        "whatsapp_config_id": None, "phone_number_id": delivery.phone_number_id or None,
        "conversation_phone_number": plus(delivery.conversation.contact_phone) if delivery.conversation else None,
    }


# --- Conversations and messages ---------------------------------------------------------------


def bsuid_of(contact_digits: str) -> str:
    """The business-scoped user id WhatsApp gives a contact: stable per contact (and per business)."""
    return f"US.{int(hashlib.sha256(contact_digits.encode()).hexdigest(), 16) % 10**20:020d}"


def contact_fields(conversation: Conversation) -> dict:
    """A contact who adopted a username arrives without a number, with a BSUID and the username
    (Kapso's docs: "do not assume phone_number, from, to or wa_id are always present")."""
    if conversation.contact_username:
        return {"phone_number": None, "business_scoped_user_id": bsuid_of(conversation.contact_phone),
                "parent_business_scoped_user_id": None, "username": conversation.contact_username}
    return {"phone_number": plus(conversation.contact_phone)}


def conversation_object(conversation: Conversation, *, with_kapso: bool = True) -> dict:
    data = {
        "id": str(conversation.id),
        **contact_fields(conversation),
        "status": conversation.status,
        "last_active_at": iso(conversation.last_active_at),
        "created_at": iso(conversation.created_at),
        "updated_at": iso(conversation.updated_at),
        "metadata": {},
        "phone_number_id": conversation.phone_number.phone_number_id,
    }
    if with_kapso:
        last = conversation.messages.order_by("-id").first()
        data["kapso"] = {
            "contact_name": conversation.contact_name or None,
            "messages_count": conversation.messages.count(),
            "last_message_id": last.wamid if last else None,
            "last_message_type": last.type if last else None,
            "last_message_timestamp": iso(last.created_at) if last else None,
            "last_message_text": last.text if last else None,
            "last_inbound_at": iso(conversation.last_inbound_at),
            "last_outbound_at": iso(conversation.last_outbound_at),
        }
    return data


def _message_core(message: Message) -> dict:
    content = {key: value for key, value in message.content.items() if key != "kapso_transcript"}
    data = {"id": message.wamid, "timestamp": unix(message.created_at), "type": message.type,
            message.type: content}
    if message.context_id:
        data["context"] = {"id": message.context_id}
    return data


def received_payload(message: Message, *, is_new_conversation: bool, batched: bool = False) -> dict:
    """`whatsapp.message.received` (docs/kapso.md §4.3, batch items too). Like the documented
    sample it carries no `message.from`: receivers take the contact from the conversation."""
    kapso = {"direction": "inbound", "status": "received", "processing_status": "pending",
             "origin": message.origin, "has_media": message.type in MEDIA_TYPES, "content": message.text}
    if message.content.get("kapso_transcript"):
        kapso["transcript"] = {"text": message.content["kapso_transcript"]}
    if batched:
        kapso.update(phone_number_id=message.phone_number.phone_number_id)
        if not message.conversation.contact_username:
            kapso.update(phone_number=plus(message.conversation.contact_phone))
    return {
        "message": {**_message_core(message), "kapso": kapso},
        "conversation": conversation_object(message.conversation, with_kapso=not batched),
        "is_new_conversation": is_new_conversation,
        "phone_number_id": message.phone_number.phone_number_id,
    }


def status_payload(message: Message) -> dict:
    """`whatsapp.message.sent|delivered|read|failed` (§4.4.2–4.4.5): the message with its status
    history so far. A `sent` of a message typed in the WhatsApp Business app has origin business_app."""
    kapso = {"direction": "outbound", "status": message.status, "processing_status": "completed",
             "origin": message.origin, "has_media": False, "statuses": message.statuses}
    return {
        "message": {**_message_core(message), "kapso": kapso},
        "conversation": conversation_object(message.conversation, with_kapso=message.status == "sent"),
        "is_new_conversation": False,
        "phone_number_id": message.phone_number.phone_number_id,
    }


def conversation_created_payload(conversation: Conversation) -> dict:
    return {"conversation": conversation_object(conversation),
            "phone_number_id": conversation.phone_number.phone_number_id}


def phone_number_event_payload(number: PhoneNumber) -> dict:
    """`whatsapp.phone_number.created|deleted` (§2.4): every documented field, no more."""
    return {
        "phone_number_id": number.phone_number_id,
        "project": {"id": PROJECT_ID},
        "customer": {"id": str(number.customer_id) if number.customer_id else None},
    }


KAPSO_DEFAULT_FIELDS = ("direction", "status", "processing_status", "origin", "phone_number", "phone_number_id",
                        "has_media", "whatsapp_conversation_id", "contact_name", "content", "statuses")


def listed_message(message: Message, kapso_fields: tuple[str, ...] | None) -> dict:
    """A history row (§6): `from` for inbound, `to` for outbound, and the requested kapso fields."""
    data = _message_core(message)
    contact = message.conversation.contact_phone
    hidden = bool(message.conversation.contact_username)  # a username contact: the BSUID, not the number
    side = "from" if message.direction == "inbound" else "to"
    if hidden:
        data[f"{side}_user_id"] = bsuid_of(contact)
        data["username"] = message.conversation.contact_username
    else:
        data[side] = contact
    if kapso_fields:
        status = "delivered" if message.status == "received" else message.status
        everything = {
            "direction": message.direction, "status": status,
            "processing_status": "processed" if message.direction == "inbound" else "completed",
            "origin": message.origin, "phone_number": None if hidden else plus(contact),
            "phone_number_id": message.phone_number.phone_number_id, "has_media": False,
            "whatsapp_conversation_id": str(message.conversation_id),
            "contact_name": message.conversation.contact_name or None, "content": message.text,
            "statuses": message.statuses,
        }
        data["kapso"] = {name: everything[name] for name in kapso_fields if name in everything}
    return data


def parse_kapso_fields(fields: str | None) -> tuple[str, ...] | None:
    """`fields=kapso(default)` / `kapso(*)` → all; `kapso(a,b)` → those; `kapso()` or none → no kapso."""
    if not fields or "kapso(" not in fields:
        return None
    inner = fields.split("kapso(", 1)[1].split(")", 1)[0]
    if inner.strip() in {"default", "*"}:
        return KAPSO_DEFAULT_FIELDS
    return tuple(part.strip() for part in inner.split(",") if part.strip()) or None
