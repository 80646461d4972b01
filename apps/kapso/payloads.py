"""Typed views of Kapso v2 webhook payloads (docs/kapso.md §4.2–4.3).

Kapso's bodies vary: batched or not, wrapped in {event, data} or bare, phone numbers with or
without "+", `message.from` present or not. Everything here is defensive and raises PayloadError
with a readable reason when a payload cannot be used.
"""

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

MESSAGE_RECEIVED = "whatsapp.message.received"
STATUS_EVENTS = {
    "whatsapp.message.sent": "sent",
    "whatsapp.message.delivered": "delivered",
    "whatsapp.message.read": "read",
    "whatsapp.message.failed": "failed",
}
PHONE_NUMBER_CREATED = "whatsapp.phone_number.created"
PHONE_NUMBER_DELETED = "whatsapp.phone_number.deleted"


class PayloadError(ValueError):
    pass


# JSON can carry what PostgreSQL cannot store: NUL characters (\u0000) and lone UTF-16 surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 32  # Kapso's payloads nest about six deep


def storable_body(raw: bytes, body: object) -> object:
    """The parsed body, with NULs and lone surrogates replaced by U+FFFD in every key and value.
    Only escapes (or surrogates in raw UTF-8, which json.loads lets through) can bring them in, so
    a body without either is returned as it is. Raises PayloadError past MAX_DEPTH levels."""
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth(body) > MAX_DEPTH:
        raise PayloadError(f"the body nests deeper than {MAX_DEPTH} levels")
    if b"\\u" not in raw and b"\xed" not in raw:
        return body
    return _storable(body)


def _storable(value: object) -> object:
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


# A WhatsApp number in international (E.164) form, as operators must type it: "+", then 6 to 15 digits.
E164_PATTERN = r"\+[1-9][0-9]{5,14}"


def normalize_phone(value: object) -> str | None:
    """A number as Kapso, a contact or the model writes it, in E.164 for storing and comparing:
    '+1 555-123-4567', '15551234567' → '+15551234567'; None unless it has 6 to 15 digits."""
    if not isinstance(value, str | int):
        return None
    digits = re.sub(r"\D", "", str(value))
    return f"+{digits}" if 6 <= len(digits) <= 15 else None


def typed_phone(text: str) -> str | None:
    """A number as an operator types it into a list: spaces, dots, dashes and brackets dropped, and then
    E.164 with its leading + ('+1 (555) 123-4567' → '+15551234567'), else None. Stricter than
    normalize_phone on purpose: no country code is guessed and no stray character is dropped."""
    number = re.sub(r"[\s().-]", "", text)
    return number if re.fullmatch(E164_PATTERN, number) else None


def split_delivery(body: object, event_header: str | None) -> list[tuple[str, dict]]:
    """One delivery → [(event name, payload), ...]. Handles batches (`data: [...]`) and the
    `{event, data}` wrapper; the event name comes from X-Webhook-Event, else the body ("" when
    neither has one: the caller decides, after the signature check, what that means)."""
    if not isinstance(body, dict):
        raise PayloadError("the body must be a JSON object")
    event = event_header or body.get("type") or body.get("event") or ""
    if not isinstance(event, str):
        event = ""
    data = body.get("data")
    if isinstance(data, list):
        items = data
    elif isinstance(body.get("event"), str) and isinstance(data, dict):
        items = [data]
    else:
        items = [body]
    if not items:
        raise PayloadError("the batch is empty")
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError("every batch item must be a JSON object")
    return [(event, item) for item in items]


def phone_number_id_of(payload: dict) -> str | None:
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    conversation = payload.get("conversation") if isinstance(payload.get("conversation"), dict) else {}
    kapso = message.get("kapso") if isinstance(message.get("kapso"), dict) else {}
    for value in (payload.get("phone_number_id"), kapso.get("phone_number_id"), conversation.get("phone_number_id")):
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    return None


@dataclass
class Contact:
    """Who a message is with. A contact who adopted a WhatsApp username may come with no number,
    only a business-scoped user id (BSUID); Kapso's docs: never assume `from` or `phone_number`."""

    phone: str | None  # "+<digits>"
    bsuid: str = ""
    username: str = ""


@dataclass
class InboundMessage:
    wamid: str
    contact: Contact
    contact_name: str
    type: str
    text: str
    media: dict
    sent_at: datetime
    conversation_id: str
    raw: dict = field(repr=False)
    origin: str = ""  # cloud_api | business_app | history_sync
    direction: str = "inbound"  # Kapso's `kapso.direction`: "outbound" is not the contact's message
    reaction_to: str = ""  # for a reaction: the wamid it reacts to
    emoji: str = ""  # for a reaction: the emoji, "" when the contact removed it

    @property
    def phone(self) -> str | None:
        return self.contact.phone

    @property
    def is_reaction(self) -> bool:
        return self.type == "reaction"

    @property
    def starts_turn(self) -> bool:
        """History backfilled on import and our own outbound echoes are stored but never answered."""
        return self.direction != "outbound" and self.origin != "history_sync" and not self.is_reaction
    reply_to: str = ""  # the wamid the contact quoted (`message.context.id`)


@dataclass
class StatusUpdate:
    wamid: str
    status: str  # sent | delivered | read | failed
    origin: str
    phone: str | None
    text: str
    error_code: str
    error_text: str
    sent_at: datetime
    conversation_id: str
    contact_name: str
    raw: dict = field(repr=False)
    bsuid: str = ""
    username: str = ""

    @property
    def contact(self) -> Contact:
        return Contact(phone=self.phone, bsuid=self.bsuid, username=self.username)

    def to_json(self) -> dict:
        """A JSON-safe copy, for handing the update to a task."""
        return {**asdict(self), "sent_at": self.sent_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict) -> "StatusUpdate":
        return cls(**{**data, "sent_at": datetime.fromisoformat(data["sent_at"])})


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None or isinstance(value, dict | list) else str(value))


def _timestamp(value: object) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)


def _message_parts(payload: dict) -> tuple[dict, dict, dict, str]:
    message = payload.get("message")
    if not isinstance(message, dict):
        raise PayloadError("`message` is missing or not an object")
    wamid = _str(message.get("id")).strip()
    if not wamid or len(wamid) > 200:
        raise PayloadError("`message.id` is missing or invalid")
    return message, _dict(message.get("kapso")), _dict(payload.get("conversation")), wamid


def _contact_phone(message: dict, kapso: dict, conversation: dict, *, outbound: bool) -> str | None:
    """The contact's number. `message.from` may be absent (docs/kapso.md §4.3): fall back to the
    conversation's number, then Kapso's copy."""
    candidates = [message.get("to")] if outbound else [message.get("from")]
    candidates += [conversation.get("phone_number"), kapso.get("phone_number")]
    for candidate in candidates:
        phone = normalize_phone(candidate)
        if phone:
            return phone
    return None


def _contact(message: dict, kapso: dict, conversation: dict, *, outbound: bool) -> Contact:
    side = "to" if outbound else "from"
    bsuid = _str(conversation.get("business_scoped_user_id") or message.get(f"{side}_user_id")).strip()
    username = _str(conversation.get("username") or message.get("username")).strip()
    phone = _contact_phone(message, kapso, conversation, outbound=outbound)
    return Contact(phone=phone, bsuid=bsuid[:100], username=username[:100])


def parse_inbound(payload: dict) -> InboundMessage:
    message, kapso, conversation, wamid = _message_parts(payload)
    direction = _str(kapso.get("direction")) or "inbound"
    contact = _contact(message, kapso, conversation, outbound=direction == "outbound")
    if not contact.phone and not contact.bsuid:
        raise PayloadError(
            "the contact is missing (no message.from, conversation.phone_number "
            "or conversation.business_scoped_user_id)"
        )
    kind = _str(message.get("type")) or "text"
    reaction = _dict(message.get("reaction")) if kind == "reaction" else {}
    contact_name = _str(_dict(conversation.get("kapso")).get("contact_name") or kapso.get("contact_name")
                        or conversation.get("contact_name"))
    return InboundMessage(
        wamid=wamid,
        contact=contact,
        contact_name=contact_name[:200],
        type=kind[:16],
        text=render_text(message, kapso),
        media=media_of(message, kapso) or choice_of(message),
        sent_at=_timestamp(message.get("timestamp")),
        conversation_id=_str(conversation.get("id") or kapso.get("whatsapp_conversation_id"))[:64],
        raw=payload,
        origin=_str(kapso.get("origin")),
        direction=direction,
        reaction_to=_str(reaction.get("message_id"))[:200],
        emoji=_str(reaction.get("emoji"))[:32],
        reply_to=_str(_dict(message.get("context")).get("id"))[:200],
    )


def parse_status(event: str, payload: dict) -> StatusUpdate:
    message, kapso, conversation, wamid = _message_parts(payload)
    status = STATUS_EVENTS[event]
    error_code, error_text = "", ""
    statuses = kapso.get("statuses")
    for entry in reversed(statuses if isinstance(statuses, list) else []):
        errors = _dict(entry).get("errors") if isinstance(entry, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            error_code = _str(errors[0].get("code"))
            error_text = _error_text(errors[0])
            break
    contact = _contact(message, kapso, conversation, outbound=True)
    return StatusUpdate(
        wamid=wamid,
        status=status,
        origin=_str(kapso.get("origin")),
        phone=contact.phone,
        bsuid=contact.bsuid,
        username=contact.username,
        text=render_text(message, kapso),
        error_code=error_code[:32],
        error_text=error_text,
        sent_at=_timestamp(message.get("timestamp")),
        conversation_id=_str(conversation.get("id"))[:64],
        contact_name=_str(_dict(conversation.get("kapso")).get("contact_name"))[:200],
        raw=payload,
    )


def _error_text(error: dict) -> str:
    """Title, message and Meta's `error_data.details` (Meta: build logic on the details; they are
    also what tells an operator what actually went wrong)."""
    parts: list[str] = []
    details = _str(_dict(error.get("error_data")).get("details"))
    for part in (_str(error.get("title")), _str(error.get("message")), details):
        if part and part not in parts:
            parts.append(part)
    return " — ".join(parts)


def media_of(message: dict, kapso: dict) -> dict:
    data = _dict(kapso.get("media_data"))
    media = {
        "url": _str(kapso.get("media_url") or data.get("url")),
        "filename": _str(data.get("filename")),
        "content_type": _str(data.get("content_type")),
        "byte_size": data.get("byte_size") if isinstance(data.get("byte_size"), int) else None,
        "transcript": _str(_dict(kapso.get("transcript")).get("text")),
    }
    kind = _dict(message.get(_str(message.get("type"))))
    media["caption"] = _str(kind.get("caption"))
    media["id"] = _str(kind.get("id"))  # Meta's media id: the way to the bytes when there is no media_url
    if not media["filename"]:
        media["filename"] = _str(kind.get("filename"))
    if not media["content_type"]:
        media["content_type"] = _str(kind.get("mime_type"))
    return {key: value for key, value in media.items() if value}


def choice_of(message: dict) -> dict:
    """What a contact tapped: {"choice": {kind, id, title}} for a reply button, a list row or a
    template's quick-reply button; {} for anything else."""
    kind = _str(message.get("type"))
    body = _dict(message.get(kind))
    if kind == "interactive" and _str(body.get("type")) in ("button_reply", "list_reply"):
        reply = _dict(body.get(_str(body.get("type"))))
        tapped = {"kind": _str(body.get("type")), "id": _str(reply.get("id")), "title": _str(reply.get("title"))}
    elif kind == "button":
        tapped = {"kind": "button", "id": _str(body.get("payload")), "title": _str(body.get("text"))}
    else:
        return {}
    return {"choice": {key: value[:256] for key, value in tapped.items()}}


def render_text(message: dict, kapso: dict) -> str:
    """A readable text for any message type, for the agent and the inbox.

    Text is its body; media becomes a short description with caption and transcript; replies to
    buttons and lists become what the contact tapped; a location becomes its name and coordinates.
    """
    kind = _str(message.get("type")) or "text"
    body = _dict(message.get(kind))
    if kind == "text":
        return _str(body.get("body")) or _str(kapso.get("content"))
    if kind in {"image", "video", "document", "sticker", "audio"}:
        return _render_media(kind, body, kapso)
    if kind == "interactive":
        reply = _dict(body.get(_str(body.get("type"))))
        title = _str(reply.get("title")) or _str(reply.get("body")) or _str(kapso.get("content"))
        description = _str(reply.get("description"))
        return f"{title} ({description})" if description else title
    if kind == "button":
        return _str(body.get("text")) or _str(body.get("payload")) or _str(kapso.get("content"))
    if kind == "location":
        name = ", ".join(p for p in (_str(body.get("name")), _str(body.get("address"))) if p)
        coords = f"{body.get('latitude')}, {body.get('longitude')}"
        return f"[Location] {name} ({coords})" if name else f"[Location] {coords}"
    if kind == "reaction":
        return f"[Reaction {_str(body.get('emoji'))}]"
    return _str(kapso.get("content")) or f"[{kind} message]"


def _render_media(kind: str, body: dict, kapso: dict) -> str:
    data = _dict(kapso.get("media_data"))
    filename = _str(data.get("filename") or body.get("filename"))
    label = {"image": "Image", "video": "Video", "document": "Document", "sticker": "Sticker", "audio": "Audio"}[kind]
    parts = [f"[{label}{': ' + filename if filename else ''}]"]
    caption = _str(body.get("caption")) or _str(_dict(kapso.get("message_type_data")).get("caption"))
    if caption:
        parts.append(caption)
    transcript = _str(_dict(kapso.get("transcript")).get("text"))
    if transcript:
        parts.append(f"Transcript: {transcript}")
    return " ".join(parts)
