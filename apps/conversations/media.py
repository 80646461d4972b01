"""The media store: a copy of every inbound media file, fetched once through Kapso, kept in Django's
storage for MEDIA_RETENTION_DAYS and served to operators through Switchboard (docs/kapso.md §7).

Kapso's links expire (`download_url` after about 4 minutes, Meta's media ids after about 7 days)
and must not reach a browser, so nothing outside this module uses them. The fetch runs in a task
(`media_fetch`), never in the webhook request; an agent turn that needs the bytes earlier calls
`media_store` itself and waits for a fetch in progress instead of starting a second one.
"""

import logging
import mimetypes
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from apps.kapso import client as kapso
from apps.kapso.errors import KapsoError

from .models import MediaStatus, Message

logger = logging.getLogger(__name__)

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
MAX_FETCH_ATTEMPTS = 3
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class MediaUnavailable(Exception):
    """The bytes cannot be had: the message says why, in words an operator can read."""


def has_media(message_type: str) -> bool:
    return message_type in MEDIA_TYPES


def media_fetch_enqueue(message_ids: list[uuid.UUID]) -> None:
    """Fetch these messages' media after the current transaction commits."""
    from apps.core.queue import enqueue

    from .tasks import media_fetch

    for message_id in message_ids:
        transaction.on_commit(lambda message_id=message_id: enqueue(media_fetch, str(message_id)))


def media_store(*, message_id: uuid.UUID | str, wait: bool = True) -> Message | None:
    """Fetch and keep the message's media, once. The row lock makes concurrent callers take turns:
    with `wait`, a caller waits for a fetch in progress and then sees its result; without it (the
    task), it leaves the work to whoever holds the lock. Returns the message, or None."""
    with transaction.atomic():
        rows = Message.objects.select_for_update(skip_locked=not wait, of=("self",)).select_related("connection")
        message = rows.filter(pk=message_id).first()
        if message is None or message.media_status != MediaStatus.PENDING:
            return message
        _fetch_into(message)
        message.save(update_fields=["media_status", "media_file", "media", "updated_at"])
    return message


def _fetch_into(message: Message) -> None:
    media = dict(message.media)
    try:
        download = _download(message)
    except kapso.MediaTooLarge as error:
        message.media_status, media["error"] = MediaStatus.FAILED, f"The file is too large to keep ({error})."
    except MediaUnavailable as error:
        message.media_status, media["error"] = MediaStatus.FAILED, str(error)
    except KapsoError as error:
        media["attempts"] = media.get("attempts", 0) + 1
        if not error.transient or media["attempts"] >= MAX_FETCH_ATTEMPTS:
            message.media_status = MediaStatus.FAILED
        media["error"] = f"Kapso did not hand over the file: {error}"
        logger.warning("media of message %s: %s (attempt %s)", message.pk, error, media["attempts"])
    else:
        content_type = media.get("content_type") or download.content_type or "application/octet-stream"
        name = _file_name(message, media, content_type)
        message.media_file.save(name, ContentFile(download.content), save=False)
        media.update(content_type=content_type, byte_size=len(download.content), stored_at=timezone.now().isoformat())
        media.pop("error", None)
        message.media_status = MediaStatus.STORED
    message.media = media


def _download(message: Message) -> kapso.Download:
    """Kapso's stored copy (`kapso.media_url`) first; else, or when that link no longer works, the
    Meta proxy's media lookup and its `download_url`."""
    cap = settings.MEDIA_MAX_BYTES
    url, media_id = message.media.get("url") or "", message.media.get("id") or ""
    if url and kapso.is_kapso_host(url):
        try:
            return kapso.download(url, max_bytes=cap)
        except KapsoError as error:
            if not media_id:
                raise
            logger.info("media_url of message %s failed (%s); trying the media id", message.pk, error)
    elif url:
        logger.warning("media_url of message %s is not on a Kapso host; not fetched", message.pk)
    if not media_id:
        raise MediaUnavailable("Kapso sent neither a file link nor a media id for this message.")
    phone_number_id = message.connection.phone_number_id  # a message always has its connection
    if not phone_number_id:
        raise MediaUnavailable("The WhatsApp number of this conversation is not connected.")
    info = kapso.get_media(media_id=media_id, phone_number_id=phone_number_id)
    link = (info.get("download_url") or info.get("url")) if isinstance(info, dict) else None
    if not isinstance(link, str) or not link:
        raise MediaUnavailable("Kapso's media lookup answered without a download link.")
    return kapso.download(link, max_bytes=cap)


def _file_name(message: Message, media: dict, content_type: str) -> str:
    return stored_name(media.get("filename") or "", message.type, content_type)


def stored_name(filename: str, kind: str, content_type: str) -> str:
    """A safe name for the stored copy: the file's own, else the kind with the type's extension."""
    name = _UNSAFE_NAME.sub("_", (filename or "").strip())[-100:].lstrip("._")
    if not name:
        extension = mimetypes.guess_extension(content_type) or ""
        name = f"{kind or 'file'}{extension}"
    return name


def media_open(message: Message):
    """The stored copy as an open file; MediaUnavailable when there is none (any more)."""
    if message.media_status != MediaStatus.STORED or not message.media_file:
        raise MediaUnavailable("This file is not stored in Switchboard.")
    try:
        return message.media_file.open("rb")
    except (FileNotFoundError, OSError) as error:
        raise MediaUnavailable("This file is no longer stored.") from error


def media_pending_stale(*, older_than: timedelta) -> list[uuid.UUID]:
    """For the sweeper: media fetches that nobody finished (a lost broker message, a dead worker)."""
    cutoff = timezone.now() - older_than
    pending = Message.objects.filter(media_status=MediaStatus.PENDING, updated_at__lt=cutoff)
    return list(pending.values_list("id", flat=True)[:500])


def media_purge_expired() -> int:
    """Delete stored copies older than MEDIA_RETENTION_DAYS. The message and its description stay."""
    cutoff = timezone.now() - timedelta(days=settings.MEDIA_RETENTION_DAYS)
    expired = Message.objects.filter(media_status=MediaStatus.STORED, created_at__lt=cutoff)
    count = 0
    for message in expired.only("id", "media_file")[:1000]:
        if message.media_file:
            message.media_file.delete(save=False)
        Message.objects.filter(pk=message.pk).update(
            media_status=MediaStatus.EXPIRED, media_file="", updated_at=timezone.now()
        )
        count += 1
    return count


def message_media_annotate(*, message_id: uuid.UUID, **notes: str) -> dict:
    """Add what was learnt from a message's media (a transcript, a document's text) to its `media`,
    in one statement so a concurrent fetch cannot lose it. Returns the new `media`."""
    with transaction.atomic():
        message = Message.objects.select_for_update(of=("self",)).only("media").get(pk=message_id)
        message.media = {**message.media, **notes}
        Message.objects.filter(pk=message_id).update(media=message.media, updated_at=timezone.now())
    return message.media


# --- Files operators send (docs/kapso.md §7) -----------------------------------------------------

# What WhatsApp accepts from the thread page, by MIME type, and its size limit per kind: photos
# JPEG or PNG up to 5 MB, documents up to 100 MB (docs/kapso.md §5.4) — and never more than the
# media store keeps (MEDIA_MAX_BYTES).
OUTGOING_TYPES = {
    "image/jpeg": "image", "image/png": "image",
    "application/pdf": "document", "text/plain": "document",
    "application/msword": "document", "application/vnd.ms-excel": "document",
    "application/vnd.ms-powerpoint": "document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "document",
}
OUTGOING_MAX_BYTES = {"image": 5 * 1024 * 1024, "document": 100 * 1024 * 1024}
MAX_CAPTION_CHARS = 1024  # WhatsApp's limit for captions
MAX_FILENAME_CHARS = 240  # and for a document's file name
# How the common kinds begin: a file that says it is one but is not is refused here, not by WhatsApp later.
_SIGNATURES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n", "application/pdf": b"%PDF-"}
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


class MediaRefused(ValueError):
    """A file WhatsApp would not take: the message says why, in words an operator can act on."""


def outgoing_check(*, filename: str, content_type: str, size: int, head: bytes) -> tuple[str, str]:
    """(kind, MIME type) of a file an operator wants to send, or MediaRefused. The browser's type
    counts, else the one the file name suggests."""
    declared = (content_type or "").split(";")[0].strip().lower()
    declared = _ALIASES.get(declared, declared)
    if declared not in OUTGOING_TYPES:
        guessed = mimetypes.guess_type(filename or "")[0] or ""
        declared = _ALIASES.get(guessed, guessed)
    kind = OUTGOING_TYPES.get(declared or "")
    if kind is None:
        raise MediaRefused(f"WhatsApp cannot send this kind of file ({filename or 'no name'}). Send a JPEG or PNG "
                           "photo, or a PDF, Word, Excel, PowerPoint or text document.")
    limit = min(OUTGOING_MAX_BYTES[kind], settings.MEDIA_MAX_BYTES)
    if size > limit:
        what = "photo" if kind == "image" else "file"
        raise MediaRefused(f"The {what} is {_megabytes(size)}; WhatsApp takes {what}s up to {_megabytes(limit)}.")
    if size == 0:
        raise MediaRefused("The file is empty.")
    signature = _SIGNATURES.get(declared)
    if signature and not head.startswith(signature):
        raise MediaRefused(f"{filename or 'The file'} is not a real {declared.split('/')[1].upper()} file.")
    return kind, declared


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")

