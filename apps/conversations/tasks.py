"""Outbox tasks (queue `default`). Tasks take ids and call services."""

import logging
import threading
import uuid
from contextlib import contextmanager
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.core.queue import enqueue
from apps.kapso.payloads import StatusUpdate
from apps.whatsapp.models import WhatsAppConnection

from . import media, services

logger = logging.getLogger(__name__)


_inline = threading.local()


def enqueue_outbox_drain(thread_id: uuid.UUID, countdown: float | None = None) -> None:
    collected = getattr(_inline, "threads", None)
    if collected is not None and countdown is None:
        collected.append(thread_id)  # drained by outbox_drains_inline() when its block ends
        return
    enqueue(outbox_drain, str(thread_id), countdown=countdown)


@contextmanager
def outbox_drains_inline():
    """Within the block, a drain asked for now is not a task: when the block ends, this thread drains
    those outboxes itself. For an agent turn: its reply goes out from the turn's own worker instead
    of a second task on the `default` queue (one Celery hop and one claim less per message,
    docs/performance.md). The outbox's rules are the same (one send in flight per thread, in order);
    a drain that fails here is handed to a task, and the sweeper remains behind both."""
    _inline.threads = collected = []
    try:
        yield
    finally:  # what was committed is sent, even if the block failed after its commit
        _inline.threads = None
        for thread_id in dict.fromkeys(collected):
            try:
                outbox_drain(str(thread_id))
            except Exception:  # noqa: BLE001 - the turn is recorded; its reply must still go out
                logger.warning("inline drain of %s failed; handed to a task", thread_id, exc_info=True)
                enqueue(outbox_drain, str(thread_id))


@contextmanager
def outbox_drains_as_tasks():
    """Inside an outbox_drains_inline() block: drains asked for here go to a task at once, for what the
    contact must see while the turn goes on (the acknowledgement), not when the turn ends."""
    collected = getattr(_inline, "threads", None)
    _inline.threads = None
    try:
        yield
    finally:
        _inline.threads = collected


@shared_task(ignore_result=True)
def outbox_drain(thread_id: str) -> None:
    """Send the thread's queued messages one at a time, in order."""
    while True:
        message, retry_at = services.outbox_claim_next(thread_id=thread_id)
        if message is None:
            if retry_at is not None:
                wait = max(0.0, (retry_at - timezone.now()).total_seconds())
                enqueue_outbox_drain(thread_id, countdown=wait)
            return
        delay = services.outbox_send(message=message)
        if delay is not None:
            enqueue_outbox_drain(thread_id, countdown=delay)
            return


@shared_task(ignore_result=True)
def sweep_outbox() -> None:
    """Beat: nudge outboxes that the database says have work nobody is doing."""
    stale = timedelta(seconds=settings.OUTBOX_STALE_SECONDS)
    for thread_id in services.outbox_recover_stale(older_than=stale):
        enqueue_outbox_drain(thread_id)


@shared_task(ignore_result=True)
def message_status_retry(connection_id: str, update: dict, tries_left: int = 5) -> None:
    """A status that arrived before the send that it describes was recorded: try again shortly.
    After the last try, a wamid still unknown is a message sent outside Switchboard: recorded."""
    connection = WhatsAppConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return
    result = services.message_status_apply(
        connection=connection, update=StatusUpdate.from_json(update), final=tries_left <= 0
    )
    if result == "unknown":
        enqueue(message_status_retry, connection_id, update, tries_left - 1, countdown=2.0)


@shared_task(ignore_result=True)
def media_fetch(message_id: str) -> None:
    """Keep a copy of an inbound message's media (apps/conversations/media.py)."""
    media.media_store(message_id=message_id, wait=False)


@shared_task(ignore_result=True)
def sweep_media() -> None:
    """Beat: fetch again the media that is still pending (lost task, transient failure), and
    delete stored copies past the retention period."""
    for message_id in media.media_pending_stale(older_than=timedelta(seconds=settings.MEDIA_FETCH_STALE_SECONDS)):
        enqueue(media_fetch, str(message_id))
    media.media_purge_expired()


def enqueue_handoff_notify(thread_id: uuid.UUID) -> None:
    enqueue(handoff_notify, str(thread_id))


@shared_task(ignore_result=True)
def handoff_notify(thread_id: str) -> None:
    """Email the members who asked to hear when a conversation needs a person."""
    services.handoff_email_send(thread_id=thread_id)


@shared_task(ignore_result=True)
def purge_expired_data() -> None:
    """Beat, hourly: raw payloads and (when configured) old messages past their retention."""
    from .privacy import retention_purge

    purged = retention_purge()
    if any(purged.values()):
        logger.info("retention purge: %s", purged)
