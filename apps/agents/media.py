"""What a model is given of a contact's media: images as image content (when the model takes
images), voice notes as their transcript, documents as their text, anything else as a description.

The bytes come from the media store (apps/conversations/media.py). Transcripts and document text
are worked out once, before the turn's first model call, and kept on the message, where operators
see the transcript too.
"""

import base64
import csv
import io
import logging

from django.conf import settings

from apps.conversations import media as store
from apps.conversations.models import Direction, MediaStatus, Message
from apps.knowledge.extract import DOCUMENT_KINDS, document_text

from . import budget, llm

logger = logging.getLogger(__name__)

DOCUMENT_TYPES = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/plain": "text",
    "text/csv": "csv",
}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif"}


def media_prepare(messages: list[Message], *, offline: bool, org) -> dict:
    """Fetch (or wait for) the media of these inbound messages, then transcribe voice notes that
    came without Kapso's transcript and extract the text of documents. `offline`: the agent runs on
    the offline demo model, so its voice notes get the demo's stand-in transcript. Returns the
    transcription usage to count against the organization's budget (see budget.org_usage), or {}."""
    usage: dict = {}
    for message in messages:
        if message.direction != Direction.INBOUND or not store.has_media(message.type):
            continue
        if message.media_status == MediaStatus.PENDING:
            fresh = store.media_store(message_id=message.pk, wait=True)
            if fresh is not None:
                message.media, message.media_status, message.media_file = (
                    fresh.media,
                    fresh.media_status,
                    fresh.media_file,
                )
        notes = _understand(message, offline=offline, org=org, usage=usage)
        if notes:
            message.media = store.message_media_annotate(message_id=message.pk, **notes)
    return {"transcription": usage} if usage else {}


def _understand(message: Message, *, offline: bool, org, usage: dict) -> dict:
    kind, media = message.type, message.media
    if kind == "audio" and not media.get("transcript") and not media.get("transcript_error"):
        return _transcript(message, offline=offline, org=org, usage=usage)
    if kind == "document" and "document_text" not in media and message.media_status == MediaStatus.STORED:
        return {"document_text": _document_text(message)}
    return {}


def _transcript(message: Message, *, offline: bool, org, usage: dict) -> dict:
    """The voice note's text, on the organization's own key when it has one (then not counted),
    else on the platform's while its budget lasts. `usage` adds up what the calls reported."""
    own_key = budget.transcription_key(org_id=org.pk)
    if offline and not (own_key or settings.TRANSCRIPTION_API_KEY or settings.OPENAI_API_KEY):
        size = message.media.get("byte_size") or 0
        return {
            "transcript": f"[Demo transcript] A voice note of {size // 1024} KB. The offline demo cannot "
            "listen; set OPENAI_API_KEY (or TRANSCRIPTION_API_KEY) for real transcripts."
        }
    if not own_key:
        reason = budget.budget_exhausted(org=org)
        if reason:
            return {"transcript_error": f"Not transcribed: {reason}"}
    try:
        with store.media_open(message) as file:
            audio = file.read()
        text, used = llm.transcribe(
            audio, filename=_filename(message, "voice.ogg"), content_type=message.media.get("content_type", ""),
            api_key=own_key)
    except (store.MediaUnavailable, llm.ModelError) as error:
        logger.warning("voice note %s not transcribed: %s", message.pk, error)
        return {"transcript_error": str(error)[:500]}
    usage.setdefault("model", settings.TRANSCRIPTION_MODEL)
    usage["own_key"] = bool(own_key) or usage.get("own_key", False)
    for name, value in used.items():
        usage[name] = usage.get(name, 0) + value
    return {"transcript": text}


def _document_text(message: Message) -> str:
    kind = DOCUMENT_TYPES.get(message.media.get("content_type", ""))
    if kind is None:
        return ""
    try:
        with store.media_open(message) as file:
            data = file.read()
        return _extract(kind, data)[: settings.MODEL_DOCUMENT_MAX_CHARS]
    except Exception as error:  # noqa: BLE001 - a broken file is described, not a failed turn
        logger.warning("no text from document %s: %s", message.pk, error)
        return ""


def _extract(kind: str, data: bytes) -> str:
    if kind in DOCUMENT_KINDS:
        return document_text(kind, data, limit=settings.MODEL_DOCUMENT_MAX_CHARS)
    text = data.decode("utf-8", errors="replace")
    if kind == "csv":
        return "\n".join(", ".join(row) for row in csv.reader(io.StringIO(text)))
    return text.strip()


def _filename(message: Message, default: str) -> str:
    return message.media.get("filename") or default


def model_content(message: Message, *, images: bool) -> str | list:
    """The message as the model sees it: its text, with a document's text or a voice note's
    transcript, and (with `images`) a stored photo as image content."""
    text = message.text or f"[{message.type} message]"
    media = message.media or {}
    if message.type == "audio" and media.get("transcript") and "Transcript:" not in text:
        text = f"{text} Transcript: {media['transcript']}"
    if message.type == "document" and media.get("document_text"):
        text = f"{text}\nText of {_filename(message, 'the document')}:\n{media['document_text']}"
    choice = media.get("choice")
    if isinstance(choice, dict):
        what = {"button_reply": "button", "list_reply": "list option", "button": "button"}.get(
            choice.get("kind"), "option"
        )
        text = f"[Tapped the {what} “{choice.get('title', '')}” (id: {choice.get('id', '')})]"
    if images and message.type == "image" and message.media_status == MediaStatus.STORED:
        part = _image_part(message)
        if part is not None:
            return [{"type": "text", "text": text}, part]
    return text


def _image_part(message: Message) -> dict | None:
    content_type = message.media.get("content_type", "")
    if content_type not in IMAGE_TYPES or (message.media.get("byte_size") or 0) > settings.MODEL_IMAGE_MAX_BYTES:
        return None
    try:
        with store.media_open(message) as file:
            data = file.read(settings.MODEL_IMAGE_MAX_BYTES + 1)
    except store.MediaUnavailable:
        return None
    if len(data) > settings.MODEL_IMAGE_MAX_BYTES:
        return None
    return {"type": "image", "media_type": content_type, "data": base64.b64encode(data).decode()}


def has_images(messages: list[Message]) -> bool:
    return any(m.type == "image" and m.media_status == MediaStatus.STORED for m in messages)
