"""What happens inside the stand-in Kapso: onboarding, contacts' messages, sends, statuses, failures."""

import base64
import hashlib
import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection as db
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.queue import enqueue

from . import conf, delivery
from .models import (
    Conversation,
    Customer,
    Delivery,
    FailureKind,
    Media,
    Message,
    PhoneNumber,
    SetupLink,
    SetupLinkStatus,
    Webhook,
)
from .payloads import (
    MEDIA_TYPES,
    PROJECT_ID,
    bsuid_of,
    compact,
    conversation_created_payload,
    phone_number_event_payload,
    received_payload,
    status_payload,
)

WINDOW = timedelta(hours=24)
CONVERSATION_IDLE = timedelta(hours=24)
SETUP_LINK_LIFETIME = timedelta(days=30)
STATUS_ORDER = ["pending", "sent", "delivered", "read"]
MAX_TEXT = 4096
IN_FLIGHT_MESSAGE = "Another message is already in-flight for this conversation. Please retry shortly."
SUPPORTED_TYPES = {"text", "image", "audio", "video", "document", "sticker", "location", "contacts", "interactive",
                   "template", "reaction"}


@dataclass
class Refused(Exception):
    """A request Kapso would refuse: the HTTP status, the exact body and any headers to answer."""

    status: int
    body: dict
    headers: dict = field(default_factory=dict)


def meta_error(status: int, message: str, *, code: int, type_: str = "OAuthException", subcode: int | None = None,
               details: str | None = None) -> Refused:
    error: dict = {"message": message, "type": type_, "code": code}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "SBX" + secrets.token_urlsafe(12)
    return Refused(status, {"error": error})


def digits(value: object) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def format_us(normalized: str) -> str:
    """'15550132468' → '+1 555-013-2468' (Kapso's display format for North American numbers)."""
    if len(normalized) == 11 and normalized.startswith("1"):
        return f"+1 {normalized[1:4]}-{normalized[4:7]}-{normalized[7:]}"
    return f"+{normalized}"


def new_wamid(contact: str) -> str:
    raw = f"\x15\x02\x00\x11\x18\x12{contact}SBX{uuid.uuid4().hex.upper()}".encode()
    return "wamid." + base64.b64encode(raw).decode()


# --- Customers and setup links (docs/kapso.md §2) ---------------------------------------------------


def customer_create(*, name: str, external_customer_id: str | None) -> Customer:
    return Customer.objects.create(name=name, external_customer_id=external_customer_id)


@transaction.atomic
def setup_link_create(*, customer: Customer, options: dict, base_url: str) -> SetupLink:
    """A hosted onboarding link; Kapso keeps one active link per customer, so older ones are revoked."""
    SetupLink.objects.filter(customer=customer, status=SetupLinkStatus.ACTIVE).update(
        status=SetupLinkStatus.REVOKED, updated_at=timezone.now())
    token = secrets.token_urlsafe(18)
    return SetupLink.objects.create(
        customer=customer, token=token, url=f"{base_url}/setup/{token}", options=options,
        expires_at=timezone.now() + SETUP_LINK_LIFETIME,
    )


def setup_link_refresh(link: SetupLink) -> SetupLink:
    if link.status == SetupLinkStatus.ACTIVE and link.expires_at <= timezone.now():
        link.status = SetupLinkStatus.EXPIRED
        link.save(update_fields=["status", "updated_at"])
    return link


def setup_offered_numbers(link: SetupLink) -> list[tuple[str, str]]:
    """The test numbers the setup page offers: (normalized, display). A reconnect link offers only
    the number it re-authorises; otherwise three fictional 555-01xx numbers nobody uses yet."""
    wanted = digits(link.options.get("reconnect_phone_number"))
    if wanted:
        return [(wanted, format_us(wanted))]
    taken = set(PhoneNumber.objects.values_list("normalized", flat=True))
    rng = random.Random(link.token)
    offered: list[tuple[str, str]] = []
    while len(offered) < 3:
        normalized = f"155501{rng.randint(0, 99):02d}{rng.randint(0, 999):03d}"
        if normalized not in taken and normalized not in dict(offered):
            offered.append((normalized, format_us(normalized)))
    return offered


def setup_link_complete(*, link_id, normalized: str, coexistence: bool = False) -> SetupLink:
    """The end of embedded signup: the number exists, the link is used, and the project webhook
    hears `whatsapp.phone_number.created` (delivered after this transaction commits)."""
    with transaction.atomic():
        link = SetupLink.objects.select_for_update().select_related("customer").get(pk=link_id)
        setup_link_refresh(link)
        if link.status != SetupLinkStatus.ACTIVE:
            raise Refused(409, {"error": f"This setup link is {link.status}."})
        if normalized not in dict(setup_offered_numbers(link)):
            raise Refused(422, {"error": "Choose one of the offered test numbers."})
        number = PhoneNumber.objects.filter(normalized=normalized, customer=link.customer).first()
        if number is None:
            number = PhoneNumber.objects.create(
                phone_number_id=_new_phone_number_id(), customer=link.customer, name=link.customer.name[:200],
                display_phone_number=format_us(normalized), normalized=normalized,
                business_account_id=str(random.randint(10**10, 10**11 - 1)), is_coexistence=coexistence,
            )
        link.status, link.whatsapp_setup_status, link.phone_number = SetupLinkStatus.USED, "completed", number
        link.save(update_fields=["status", "whatsapp_setup_status", "phone_number", "updated_at"])
        delivery.emit("whatsapp.phone_number.created", phone_number_event_payload(number), number=None)
    return link


def _new_phone_number_id() -> str:
    while True:
        candidate = str(random.randint(10**14, 10**15 - 1))
        if not PhoneNumber.objects.filter(phone_number_id=candidate).exists():
            return candidate


@transaction.atomic
def phone_number_delete(*, number: PhoneNumber) -> None:
    """`whatsapp.phone_number.deleted` fires at the start of the teardown, then the number goes."""
    delivery.emit("whatsapp.phone_number.deleted", phone_number_event_payload(number), number=None)
    number.delete()


# --- Webhooks (docs/kapso.md §4.4) -----------------------------------------------------------------

WEBHOOK_FIELDS = {"url", "secret_key", "events", "active", "headers", "buffer_enabled", "buffer_window_seconds",
                  "max_buffer_size", "buffer_events", "inactivity_minutes", "payload_version", "kind"}


def webhook_validate(data: dict, *, number: PhoneNumber | None, creating: bool) -> dict:
    unknown = set(data) - WEBHOOK_FIELDS - {"phone_number_id"}
    if unknown:
        raise Refused(422, {"error": f"Unknown webhook fields: {', '.join(sorted(unknown))}"})
    if creating and not data.get("url"):
        raise Refused(422, {"error": "url can't be blank"})
    if "url" in data and not str(data["url"]).startswith(("http://", "https://")):
        raise Refused(422, {"error": "url must be an http(s) URL"})
    if creating and number is not None and not data.get("secret_key"):
        raise Refused(422, {"error": "secret_key can't be blank"})
    if data.get("kind", "kapso") != "kapso":
        raise Refused(422, {"error": "The sandbox delivers kind: kapso webhooks only."})
    if data.get("payload_version", "v2") != "v2":
        raise Refused(422, {"error": "The sandbox delivers payload_version v2 only."})
    if creating and not data.get("events"):
        raise Refused(422, {"error": "events can't be blank"})
    if "events" in data and not (isinstance(data["events"], list) and all(isinstance(e, str) for e in data["events"])):
        raise Refused(422, {"error": "events must be a list of event names"})
    window = data.get("buffer_window_seconds")
    if window is not None and not (isinstance(window, int) and 1 <= window <= 60):
        raise Refused(422, {"error": "buffer_window_seconds must be between 1 and 60"})
    size = data.get("max_buffer_size")
    if size is not None and not (isinstance(size, int) and 1 <= size <= 100):
        raise Refused(422, {"error": "max_buffer_size must be between 1 and 100"})
    return {key: value for key, value in data.items() if key in WEBHOOK_FIELDS}


def webhook_create(*, number: PhoneNumber | None, data: dict) -> Webhook:
    fields = webhook_validate(data, number=number, creating=True)
    if Webhook.objects.filter(phone_number=number, url=fields["url"]).exists():
        raise Refused(409, {"error": "A webhook with this URL already exists for this scope."})
    fields.setdefault("headers", {})
    if fields.get("buffer_enabled"):
        fields.setdefault("buffer_window_seconds", 5)
        fields.setdefault("max_buffer_size", 50)
        fields.setdefault("buffer_events", ["whatsapp.message.received"])
    return Webhook.objects.create(phone_number=number, **fields)


def webhook_update(*, webhook: Webhook, data: dict) -> Webhook:
    fields = webhook_validate(data, number=webhook.phone_number, creating=False)
    if "kind" in fields and fields["kind"] != webhook.kind:
        raise Refused(422, {"error": "kind cannot change after creation"})
    for key, value in fields.items():
        setattr(webhook, key, value)
    webhook.save()
    return webhook


def webhook_set_buffering(*, number: PhoneNumber, enabled: bool, window: int) -> None:
    """The phone page's switch: buffer this number's received messages into batches."""
    Webhook.objects.filter(phone_number=number).update(
        buffer_enabled=enabled, buffer_window_seconds=window if enabled else None,
        max_buffer_size=50 if enabled else None, buffer_events=["whatsapp.message.received"] if enabled else [],
        updated_at=timezone.now(),
    )


@transaction.atomic
def webhook_test(*, webhook: Webhook, event_type: str | None) -> None:
    """`POST /whatsapp/webhooks/{id}/test`: a synthetic payload of a subscribed event."""
    event = event_type or (webhook.events[0] if webhook.events else "")
    if event not in webhook.events:
        raise Refused(422, {"error": f"The webhook is not subscribed to {event or 'any event'}."})
    number = webhook.phone_number
    if event.startswith("whatsapp.phone_number."):
        target = number or PhoneNumber.objects.first()
        if target is None:
            raise Refused(422, {"error": "No phone number to describe in a test event yet."})
        payload = phone_number_event_payload(target)
    elif number is not None:
        payload = _test_message_payload(number)
    else:
        raise Refused(422, {"error": "This event needs a number-scoped webhook."})
    delivery._create(webhook, event, delivery.compact(payload), number=number, conversation=None)


def _test_message_payload(number: PhoneNumber) -> dict:
    now = timezone.now()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    wamid = new_wamid("15550000000")
    return {
        "message": {"id": wamid, "timestamp": str(int(now.timestamp())), "type": "text",
                    "text": {"body": "Test message from Kapso"},
                    "kapso": {"direction": "inbound", "status": "received", "processing_status": "pending",
                              "origin": "cloud_api", "has_media": False, "content": "Test message from Kapso"}},
        "conversation": {"id": str(uuid.uuid4()), "phone_number": "+15550000000", "status": "active",
                         "last_active_at": stamp, "created_at": stamp, "updated_at": stamp, "metadata": {},
                         "phone_number_id": number.phone_number_id},
        "is_new_conversation": True,
        "phone_number_id": number.phone_number_id,
    }


# --- Conversations -----------------------------------------------------------------------------------


def conversation_for(*, number: PhoneNumber, contact: str, name: str = "", username: str | None = None
                     ) -> tuple[Conversation, bool]:
    """The contact's active Kapso conversation, or a new one after 24 h of silence (rotation)."""
    now = timezone.now()
    conversation = (
        Conversation.objects.select_for_update()
        .filter(phone_number=number, contact_phone=contact, status="active")
        .order_by("-last_active_at")
        .first()
    )
    if conversation is not None and conversation.last_active_at < now - CONVERSATION_IDLE:
        conversation.status = "ended"
        conversation.save(update_fields=["status", "updated_at"])
        conversation = None
    if conversation is not None:
        if name and name != conversation.contact_name:
            conversation.contact_name = name
        if username is not None:
            conversation.contact_username = username
        return conversation, False
    conversation = Conversation.objects.create(
        phone_number=number, contact_phone=contact, contact_name=name, contact_username=username or "",
        last_active_at=now)
    return conversation, True


def window_open(*, number: PhoneNumber, contact: str) -> bool:
    """Meta's customer-service window: 24 hours from the contact's last message."""
    return Message.objects.filter(
        phone_number=number, conversation__contact_phone=contact, direction="inbound",
        created_at__gte=timezone.now() - WINDOW,
    ).exists()


# --- A contact writes (the phone page) --------------------------------------------------------------


@transaction.atomic
def contact_message_receive(*, number: PhoneNumber, contact: str, name: str, text: str, context_id: str = "",
                            emit: bool = True, username: str | None = None, kind: str = "text",
                            content: dict | None = None, origin: str = "cloud_api",
                            at: datetime | None = None) -> Message:
    """A contact's message: text, or any `kind` with its `content` (a reaction: {message_id, emoji}).
    `username` makes the contact one who hides their number; `origin` history_sync with a past `at`
    is a message imported from the phone's history."""
    now = at or timezone.now()
    conversation, is_new = conversation_for(number=number, contact=contact, name=name, username=username)
    message = Message.objects.create(
        wamid=new_wamid(contact), phone_number=number, conversation=conversation, direction="inbound", type=kind,
        content=content or {"body": text}, text=text, status="received", context_id=context_id, created_at=now,
        origin=origin,
    )
    conversation.last_inbound_at = max(filter(None, [conversation.last_inbound_at, now]))
    conversation.last_active_at = max(conversation.last_active_at, now)
    conversation.save()
    if emit:
        if is_new:
            delivery.emit("whatsapp.conversation.created", conversation_created_payload(conversation), number=number)
        delivery.emit(
            "whatsapp.message.received", received_payload(message, is_new_conversation=is_new), number=number,
            conversation=conversation, sequence=message.id,
            batch_item=received_payload(message, is_new_conversation=is_new, batched=True),
        )
    return message


@transaction.atomic
def business_app_message_send(*, number: PhoneNumber, contact: str, text: str, origin: str = "business_app"
                              ) -> Message:
    """The owner answers from the WhatsApp Business app on the phone (coexistence): Kapso reports it
    as `whatsapp.message.sent` with origin business_app. With origin cloud_api it is a reply typed in
    Kapso's own inbox (or a workflow, a broadcast): sent through Kapso's API, not by Switchboard."""
    now = timezone.now()
    conversation, _ = conversation_for(number=number, contact=contact)
    message = Message.objects.create(
        wamid=new_wamid(contact), phone_number=number, conversation=conversation, direction="outbound", type="text",
        content={"body": text}, text=text, status="pending", origin=origin, created_at=now,
    )
    conversation.last_outbound_at = conversation.last_active_at = now
    conversation.save()
    message_advance(message=message, status="sent")
    return message


HISTORY_SAMPLE = ["Hi, is my order on its way?", "It was supposed to arrive on Monday.", "Thanks for checking!"]


def history_import(*, number: PhoneNumber, contact: str, name: str) -> list[Message]:
    """Kapso backfills a number's history when it is imported: old messages arrive as
    `whatsapp.message.received` with origin history_sync, in their original order and times."""
    start = timezone.now() - timedelta(days=3)
    return [
        contact_message_receive(number=number, contact=contact, name=name, text=text, origin="history_sync",
                                at=start + timedelta(minutes=index))
        for index, text in enumerate(HISTORY_SAMPLE)
    ]


# A small picture of a parcel (240×160 PNG): the sandbox's stand-in for every photo a contact sends.
PHOTO_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAPAAAACgCAIAAAC9uXYyAAACBklEQVR42u3SUQ3AIAxFUYQhZQbws0zEdEzARCBgEnCwHxJSmvNy"
    "DbQ55e2flKbiBQJaAloCWgJaQEtAS0BLQEtAC2gJaAloCWgJaAEtAS0BLQEtAS2gJaAloCWgJaAFtAS0BLQEtAS0gJaAloCWgJaA"
    "FtAS0BLQEtACOmDPeeze1epPCQ4EGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCB"
    "BhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCB"
    "BhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCB"
    "BhpooIEGGmiggQYaaKCBBhpooIEGGmiggQYaaKCBBhpooIEGeh3oO+SAjl9MOUADDTTQQAMNNNBAAw000EADDTTQQAMNNNBAAw00"
    "0EADDTTQQAMNNNBAAw000EADDTTQQAMNNNBAAw000EADDTTQQO8G2gxoM6ANaDOgzYA2A9qANgPaDGgzoM2ANqDNgDYD2gxoM6AN"
    "aDOgzYA2A9oMaAPaDGgzoM2ANgPagDYD2gxos+kNDUAPiAJ6dKwAAAAASUVORK5CYII="
)
# A one-page PDF with a line of text, and a few bytes that stand for an Ogg voice note.
INVOICE_PDF = base64.b64decode(
    "JVBERi0xLjQKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyAvUGFnZXMgMiAwIFIgPj4KZW5kb2JqCjIgMCBvYmoKPDwgL1R5cGUg"
    "L1BhZ2VzIC9LaWRzIFszIDAgUl0gL0NvdW50IDEgPj4KZW5kb2JqCjMgMCBvYmoKPDwgL1R5cGUgL1BhZ2UgL1BhcmVudCAyIDAg"
    "UiAvTWVkaWFCb3ggWzAgMCA2MTIgNzkyXSAvQ29udGVudHMgNCAwIFIgL1Jlc291cmNlcyA8PCAvRm9udCA8PCAvRjEgNSAwIFIg"
    "Pj4gPj4gPj4KZW5kb2JqCjQgMCBvYmoKPDwgL0xlbmd0aCA4OCA+PgpzdHJlYW0KQlQgL0YxIDEyIFRmIDcyIDcyMCBUZCAoSW52"
    "b2ljZSAyMDMxOiAyIGNoYWlycywgdG90YWwgMTQ5IEVVUiwgZHVlIG9uIERlY2VtYmVyIDE1KSBUaiBFVAplbmRzdHJlYW0KZW5k"
    "b2JqCjUgMCBvYmoKPDwgL1R5cGUgL0ZvbnQgL1N1YnR5cGUgL1R5cGUxIC9CYXNlRm9udCAvSGVsdmV0aWNhID4+CmVuZG9iagp4"
    "cmVmCjAgNgowMDAwMDAwMDAwIDY1NTM1IGYgCjAwMDAwMDAwMDkgMDAwMDAgbiAKMDAwMDAwMDA1OCAwMDAwMCBuIAowMDAwMDAw"
    "MTE1IDAwMDAwIG4gCjAwMDAwMDAyNDEgMDAwMDAgbiAKMDAwMDAwMDM3OSAwMDAwMCBuIAp0cmFpbGVyCjw8IC9TaXplIDYgL1Jv"
    "b3QgMSAwIFIgPj4Kc3RhcnR4cmVmCjQ0OQolJUVPRgo="
)
VOICE_OGG = b"OggS\x00\x02" + b"\x00" * 58 + b"sandbox voice note"
# What the sandbox serves for each kind of media a contact sends: (bytes, MIME type, file name).
SAMPLE_MEDIA = {
    "image": (PHOTO_PNG, "image/png", "photo.png"),
    "audio": (VOICE_OGG, "audio/ogg", "voice.ogg"),
    "document": (INVOICE_PDF, "application/pdf", "invoice.pdf"),
}


def media_bytes(message: Message) -> tuple[bytes, str]:
    content, mime_type, _ = SAMPLE_MEDIA.get(message.type, SAMPLE_MEDIA["image"])
    return content, mime_type


def contact_media_receive(*, number: PhoneNumber, contact: str, name: str, kind: str, caption: str = "",
                          transcript: str = "") -> Message:
    """A voice note (with Kapso's transcript or without) or a PDF, by Meta media id (no media_url)."""
    data, mime_type, filename = SAMPLE_MEDIA[kind]
    content = {"id": str(random.randint(10**15, 10**16 - 1)), "mime_type": mime_type,
               "sha256": hashlib.sha256(data).hexdigest()}
    if kind == "document":
        content["filename"] = filename
    if caption and kind != "audio":
        content["caption"] = caption
    if transcript:
        content["kapso_transcript"] = transcript  # goes out as message.kapso.transcript.text
    label = {"audio": "[Audio attached] (voice.ogg)", "document": "[Document: invoice.pdf]"}[kind]
    return contact_message_receive(number=number, contact=contact, name=name, kind=kind, content=content,
                                   text=f"{label}{' Transcript: ' + transcript if transcript else ''}")


def contact_taps(*, number: PhoneNumber, contact: str, name: str, list_reply: bool) -> Message:
    """The contact taps a reply button (or picks a list row) of the business's last message."""
    last = (Message.objects.filter(phone_number=number, conversation__contact_phone=contact, direction="outbound")
            .order_by("-id").first())
    if list_reply:
        content = {"type": "list_reply", "list_reply": {"id": "row_express", "title": "Express Shipping",
                                                        "description": "1-2 business days"}}
    else:
        content = {"type": "button_reply", "button_reply": {"id": "btn_yes", "title": "Yes"}}
    title = content[content["type"]]["title"]
    return contact_message_receive(number=number, contact=contact, name=name, kind="interactive", content=content,
                                   text=title, context_id=last.wamid if last else "")


def contact_quotes(*, number: PhoneNumber, contact: str, name: str, text: str) -> Message | None:
    """The contact answers quoting the business's last message (`message.context.id`)."""
    last = (Message.objects.filter(phone_number=number, conversation__contact_phone=contact, direction="outbound")
            .order_by("-id").first())
    if last is None:
        return None
    return contact_message_receive(number=number, contact=contact, name=name, text=text, context_id=last.wamid)


# The business account's approved templates (GET /{waba_id}/message_templates).
DEMO_TEMPLATES = [
    {"id": "1627019861106475", "name": "order_update", "language": "en_US", "status": "APPROVED",
     "category": "UTILITY", "parameter_format": "POSITIONAL",
     "components": [{"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped."}]},
    {"id": "1627019861106476", "name": "follow_up", "language": "en_US", "status": "APPROVED",
     "category": "MARKETING", "parameter_format": "NAMED",
     "components": [{"type": "BODY", "text": "Hi {{first_name}}, can we help with anything else?"}]},
]


def contact_photo_receive(*, number: PhoneNumber, contact: str, name: str, caption: str = "") -> Message:
    """A photo whose webhook carries only Meta's media id, no `kapso.media_url` (Kapso's copy is not
    always there): the receiver must look the id up (`GET /{media_id}?phone_number_id=`) and fetch
    its short-lived `download_url`."""
    media_id = str(random.randint(10**15, 10**16 - 1))
    content = {"id": media_id, "mime_type": "image/png", "sha256": hashlib.sha256(PHOTO_PNG).hexdigest()}
    if caption:
        content["caption"] = caption
    return contact_message_receive(number=number, contact=contact, name=name, text=caption or "[Image]",
                                   kind="image", content=content)


def media_lookup(*, number: PhoneNumber, media_id: str) -> Message:
    """The message that carries this media id on this number (404 otherwise)."""
    message = Message.objects.filter(phone_number=number, content__id=media_id, type__in=MEDIA_TYPES).first()
    if message is None:
        raise Refused(404, {"error": {"message": "Unsupported get request.", "type": "GraphMethodException",
                                      "code": 100}})
    return message


def contact_reacts(*, number: PhoneNumber, contact: str, name: str, emoji: str) -> Message | None:
    """The contact reacts to the business's last message (an empty emoji removes the reaction)."""
    target = (Message.objects.filter(phone_number=number, conversation__contact_phone=contact, direction="outbound")
              .order_by("-id").first())
    if target is None:
        return None
    return contact_message_receive(number=number, contact=contact, name=name, text=f"Reacted {emoji}".strip(),
                                   kind="reaction", content={"message_id": target.wamid, "emoji": emoji})


def phone_number_readd(*, number: PhoneNumber, after_seconds: float = 5.0) -> None:
    """The number is removed from the project (its webhooks go with it) and connected again: the
    same phone_number_id comes back with `whatsapp.phone_number.created`, a moment later."""
    with transaction.atomic():
        delivery.emit("whatsapp.phone_number.deleted", phone_number_event_payload(number), number=None)
        number.webhooks.all().delete()
        for webhook in delivery.subscribed_webhooks("whatsapp.phone_number.created", None):
            created = Delivery.objects.create(
                webhook=webhook, event="whatsapp.phone_number.created",
                body=compact(phone_number_event_payload(number)).decode(), phone_number_id=number.phone_number_id)
            delivery.schedule(created.id, after_seconds)


def outage_start(*, number: PhoneNumber, minutes: float) -> None:
    """Every delivery for this number fails until then, as if its receiver were down."""
    until = timezone.now() + timedelta(minutes=minutes) if minutes > 0 else None
    PhoneNumber.objects.filter(pk=number.pk).update(outage_until=until, updated_at=timezone.now())


# --- Switchboard sends (Meta proxy, docs/kapso.md §5) ---------------------------------------------------


def failure_take(*, number: PhoneNumber) -> tuple[str, int] | None:
    """Consume one injected failure, if the phone page armed any."""
    with transaction.atomic():
        armed = PhoneNumber.objects.select_for_update().filter(pk=number.pk, fail_remaining__gt=0).first()
        if armed is None:
            return None
        PhoneNumber.objects.filter(pk=number.pk).update(fail_remaining=F("fail_remaining") - 1)
        return armed.fail_kind, armed.fail_retry_after


def failure_arm(*, number: PhoneNumber, kind: str, count: int, retry_after: int = 60) -> None:
    PhoneNumber.objects.filter(pk=number.pk).update(
        fail_kind=kind if count else "", fail_remaining=max(0, min(count, 50)),
        fail_retry_after=max(0, min(retry_after, 3600)), updated_at=timezone.now())


def _injected_refusal(kind: str, retry_after: int) -> Refused | None:
    if kind == FailureKind.OUTSIDE_WINDOW:
        return meta_error(422, "Cannot send non-template messages outside the 24-hour window.", code=131047,
                          type_="MessageError", subcode=131047)
    if kind == FailureKind.RATE_LIMITED:
        return Refused(429, {"error": "Rate limit exceeded",
                             "message": "You have exceeded the rate limit. Please try again later."},
                       {"Retry-After": str(retry_after), "X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0"})
    if kind == FailureKind.SERVER_ERROR:
        return meta_error(500, "An unexpected error has occurred. Please retry your request later.", code=2)
    if kind == FailureKind.IN_FLIGHT:
        return Refused(409, {"error": IN_FLIGHT_MESSAGE})
    if kind == FailureKind.NO_CREDITS:
        return Refused(402, {"error": "Your Kapso balance doesn't cover Meta's fee for this message.",
                             "code": "insufficient_credits",
                             "billing_url": f"https://app.kapso.ai/projects/{PROJECT_ID}/billing"})
    if kind == FailureKind.MARKETING_STOPPED:
        return Refused(422, {"error": "Contact stopped marketing messages on this WhatsApp number",
                             "code": "marketing_preference_stopped"})
    if kind == FailureKind.ACCOUNT_MISMATCH:
        return Refused(422, {"error": "Messaging account does not match this WhatsApp phone number",
                             "code": "messaging_account_mismatch"})
    return None


def _validate_send(body: dict) -> tuple[str, str, dict]:
    if body.get("messaging_product") != "whatsapp":
        raise meta_error(400, "(#100) The parameter messaging_product is required.", code=100)
    to = digits(body.get("to"))
    if not body.get("to") and body.get("recipient"):  # a BSUID instead of a number (`to` wins if both)
        to = _contact_of_bsuid(str(body["recipient"]))
    elif not body.get("to"):
        raise meta_error(400, "(#100) The parameter to is required.", code=100)
    if not 6 <= len(to) <= 15:
        raise meta_error(400, "Invalid phone number format", code=400, subcode=1001)
    kind = body.get("type") or "text"
    if kind not in SUPPORTED_TYPES:
        raise meta_error(400, f"(#100) Param type must be one of {sorted(SUPPORTED_TYPES)}", code=100)
    content = body.get(kind)
    if not isinstance(content, dict):
        raise meta_error(400, f"(#100) The parameter {kind} is required.", code=100)
    if kind == "text":
        text = content.get("body")
        if not isinstance(text, str) or not text:
            raise meta_error(400, "(#100) The parameter text['body'] is required.", code=100)
        if len(text) > MAX_TEXT:
            raise meta_error(400, f"(#100) Param text['body'] must be at most {MAX_TEXT} characters long.", code=100)
    return to, kind, content


def _contact_of_bsuid(bsuid: str) -> str:
    for contact in Conversation.objects.exclude(contact_username="").values_list("contact_phone", flat=True).distinct():
        if bsuid_of(contact) == bsuid:
            return contact
    raise meta_error(400, "(#100) Invalid parameter: recipient is not a known business-scoped user id.", code=100)


def _render(kind: str, content: dict) -> str:
    if kind == "text":
        return content.get("body", "")
    if kind == "template":
        return f"[Template: {content.get('name', '')}]"
    if kind == "interactive":
        return (content.get("body") or {}).get("text") or "[Interactive message]"
    caption = content.get("caption") or content.get("emoji") or content.get("name") or ""
    return f"[{kind.capitalize()}] {caption}".strip()


# What Meta takes in an upload (its own error lists them; docs/kapso.md §5.4).
UPLOAD_TYPES = ("audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg", "audio/opus",
                "application/vnd.ms-powerpoint", "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/pdf", "text/plain",
                "application/vnd.ms-excel", "image/jpeg", "image/png", "image/webp", "video/mp4", "video/3gpp")
UPLOAD_MAX_BYTES = 100 * 1024 * 1024


def media_upload(*, number: PhoneNumber, fields: dict, file) -> Media:
    """`POST /{phone_number_id}/media` (multipart): Meta checks `messaging_product` and the file
    part's own Content-Type; a typeless part is refused (docs/kapso.md §7)."""
    if fields.get("messaging_product") != "whatsapp":
        raise meta_error(400, "(#100) The parameter messaging_product is required.", code=100)
    if file is None:
        raise meta_error(400, "(#100) The parameter file is required.", code=100)
    mime_type = (file.content_type or "").split(";")[0].strip().lower()
    if mime_type not in UPLOAD_TYPES:
        raise meta_error(400, "(#100) Param file must be a file with one of the following types: "
                              + ", ".join(UPLOAD_TYPES), code=100)
    if file.size > UPLOAD_MAX_BYTES:
        raise meta_error(400, "(#100) The file is too large.", code=100)
    return Media.objects.create(media_id=str(random.randint(10**15, 10**16 - 1)), phone_number=number,
                                mime_type=mime_type, filename=(file.name or "")[:255], data=file.read())


def _uploaded_media_check(number: PhoneNumber, kind: str, content: dict) -> None:
    """A media send by `id` needs a file uploaded to this number first, as Meta's error 100 says."""
    if kind in MEDIA_TYPES and content.get("id") is not None:
        if not Media.objects.filter(phone_number=number, media_id=str(content["id"])).exists():
            raise meta_error(400, f"(#100) Invalid parameter: media id {content['id']} was not uploaded to this "
                                  "phone number.", code=100)


def outbound_send(*, number: PhoneNumber, body: dict) -> dict:
    """`POST /{phone_number_id}/messages` with a message: the Meta proxy's checks, in Kapso's order
    of evidence: injected failures, the 24-hour window, one send in flight per conversation."""
    to, kind, content = _validate_send(body)
    _uploaded_media_check(number, kind, content)
    injected = failure_take(number=number)
    fail_later = False
    if injected:
        refusal = _injected_refusal(*injected)
        if refusal:
            raise refusal
        fail_later = injected[0] == FailureKind.FAILED_LATER
    if kind != "template" and not window_open(number=number, contact=to):
        raise meta_error(422, "Cannot send non-template messages outside the 24-hour window.", code=131047,
                         type_="MessageError", subcode=131047)
    with transaction.atomic():
        if not _in_flight_lock(number.phone_number_id, to):
            raise Refused(409, {"error": IN_FLIGHT_MESSAGE})
        now = timezone.now()
        conversation, _ = conversation_for(number=number, contact=to)
        message = Message.objects.create(
            wamid=new_wamid(to), phone_number=number, conversation=conversation, direction="outbound", type=kind,
            content=content, text=_render(kind, content), status="pending", created_at=now,
            context_id=str((body.get("context") or {}).get("message_id") or "")[:200],
        )
        conversation.last_outbound_at = conversation.last_active_at = now
        conversation.save()
        sent_delay, _ = conf.status_delays()
        transaction.on_commit(lambda: _enqueue_advance(message.id, "sent", sent_delay, fail_later))
    return {"messaging_product": "whatsapp", "contacts": [{"input": str(body.get("to")), "wa_id": to}],
            "messages": [{"id": message.wamid}]}


def _in_flight_lock(phone_number_id: str, to: str) -> bool:
    """Two sends to one conversation at the same moment: the second gets Kapso's 409."""
    key = int.from_bytes(hashlib.sha256(f"sandbox:{phone_number_id}:{to}".encode()).digest()[:8], "big", signed=True)
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        return bool(cursor.fetchone()[0])


def _enqueue_advance(message_id: int, status: str, countdown: float, fail_later: bool = False) -> None:
    from .tasks import advance_message

    enqueue(advance_message, message_id, status, fail_later, countdown=countdown or None)


@transaction.atomic
def inbound_mark_read(*, number: PhoneNumber, wamid: str, typing: bool) -> None:
    """Switchboard marks a contact's message read (blue ticks on the phone page)."""
    message = Message.objects.select_for_update().filter(phone_number=number, wamid=wamid).first()
    if message is None:
        raise meta_error(404, "Message not found", code=404, type_="MessageError")
    if message.direction == "inbound" and message.status != "read":
        message.status = "read"
        message.statuses = [*message.statuses, _status_entry(message, "read")]
        message.save(update_fields=["status", "statuses"])


# --- Status progression -------------------------------------------------------------------------------


def _status_entry(message: Message, status: str, errors: list | None = None) -> dict:
    entry = {"id": message.wamid, "status": status, "timestamp": str(int(timezone.now().timestamp())),
             "recipient_id": message.conversation.contact_phone}
    if status == "sent":
        entry["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    if errors:
        entry["errors"] = errors
    return entry


FAILED_131047 = [{"code": 131047, "title": "Re-engagement message",
                  "message": "More than 24 hours have passed since the recipient last replied"}]


def message_advance(*, message: Message, status: str) -> bool:
    """Move an outbound message forward (never back) and tell the number's webhooks."""
    with transaction.atomic():
        message = Message.objects.select_for_update().select_related("conversation", "phone_number").get(pk=message.pk)
        current = message.status
        if current == "failed" or (status != "failed" and STATUS_ORDER.index(status) <= STATUS_ORDER.index(current)):
            return False
        if status == "failed" and current == "read":
            return False
        message.status = status
        message.statuses = [*message.statuses,
                            _status_entry(message, status, FAILED_131047 if status == "failed" else None)]
        message.save(update_fields=["status", "statuses"])
        delivery.emit(f"whatsapp.message.{status}", status_payload(message), number=message.phone_number,
                      conversation=message.conversation)
    return True


def message_advance_task(message_id: int, status: str, fail_later: bool) -> None:
    """Task body: accepted → sent → delivered (or → failed when the phone page asked for it)."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None or not message_advance(message=message, status=status):
        return
    if status == "sent" and message.origin == "cloud_api":
        _, delivered_delay = conf.status_delays()
        _enqueue_advance(message_id, "failed" if fail_later else "delivered", delivered_delay)


def contact_reads(*, number: PhoneNumber, contact: str) -> int:
    """The contact looked at the chat: every delivered reply becomes read (one `read` webhook each)."""
    unread = Message.objects.filter(
        phone_number=number, conversation__contact_phone=contact, direction="outbound", origin="cloud_api",
        status__in=["sent", "delivered"],
    )
    count = 0
    for message in unread:
        if message.status == "sent":
            message_advance(message=message, status="delivered")
        count += message_advance(message=message, status="read")
    return count
