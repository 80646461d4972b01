"""Catching up after an outage: inbound messages Kapso has and we missed.

Kapso retries a webhook delivery for about two and a half minutes, then marks it failed and never
sends it again (docs/kapso.md §4.2). So after any outage longer than that (ours, the network's), some
customers' messages exist only in Kapso. For each connected number we list Kapso's inbound history
since the last message we stored (Meta proxy `GET /{phone_number_id}/messages`, following cursors)
and ingest what is missing through the same handler as a webhook. Messages are deduplicated by
wamid, so catching up while Kapso redelivers changes nothing twice. A message older than
KAPSO_CATCHUP_MAX_AGE_SECONDS is stored and flagged for a person rather than answered hours late.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.conversations import services as conversations
from apps.conversations.models import Direction, Message, Thread
from apps.kapso import client as kapso
from apps.kapso.payloads import MESSAGE_RECEIVED, PayloadError, parse_inbound
from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection

from .handlers import on_message_received
from .models import ProcessingResult, WebhookKind
from .services import event_record

logger = logging.getLogger(__name__)

HISTORY_MAX_PAGES = 20  # 2,000 messages per number and run; the next run continues from there
OVERLAP = timedelta(minutes=2)  # Kapso's clock and ours differ; duplicates are skipped by wamid
# A number with nothing stored yet looks back one day: WhatsApp's 24-hour window, beyond which a
# message could not be answered with free text anyway.
FIRST_LOOKBACK = timedelta(hours=24)


@dataclass
class CatchUpResult:
    found: int = 0  # missing messages ingested
    answered: int = 0  # of those, handed to the agent
    flagged: int = 0  # of those, too old to answer: left for a person


def connection_catch_up(*, connection: WhatsAppConnection) -> CatchUpResult:
    """Ingest the number's inbound messages that Kapso has and we don't. Raises KapsoError."""
    if connection.status != ConnectionStatus.CONNECTED or not connection.phone_number_id:
        return CatchUpResult()
    rows = kapso.list_all_messages(
        phone_number_id=connection.phone_number_id, direction="inbound", since=_since(connection).isoformat(),
        max_pages=HISTORY_MAX_PAGES,
    )
    items = _missing(connection, rows)
    if not items:
        return CatchUpResult()
    cutoff = timezone.now() - timedelta(seconds=settings.KAPSO_CATCHUP_MAX_AGE_SECONDS)
    fresh = [item for item in items if item.sent_at >= cutoff]
    late = [item for item in items if item.sent_at < cutoff]
    with transaction.atomic():
        _receipt(connection, items, late)
        if fresh:
            on_message_received(connection, fresh)  # the webhook's own path: stored, then answered
        if late:
            recorded = conversations.inbound_messages_record(connection=connection, messages=late)
            new_ids = [message_id for _, ids in recorded.values() for message_id in ids]
            now = timezone.now()
            Message.objects.filter(pk__in=new_ids).update(needs_attention=True, updated_at=now)
            # Their threads join the inbox's "needs a person" list.
            waiting = [thread_id for thread_id, (_, ids) in recorded.items() if ids]
            Thread.objects.filter(pk__in=waiting, needs_person_since__isnull=True).update(needs_person_since=now)
    logger.info("caught up %d missed messages for %s (%d flagged)", len(items), connection.pk, len(late))
    return CatchUpResult(found=len(items), answered=len(fresh), flagged=len(late))


def catch_up_words(result: CatchUpResult) -> str:
    """What a catch-up found, for an operator."""
    if not result.found:
        return "No missed messages: Switchboard has everything Kapso received for this number."
    words = f"Found {result.found} missed message{'s' if result.found != 1 else ''}"
    if result.answered:
        words += f"; {result.answered} will be answered now"
    if result.flagged:
        words += f"; {result.flagged} arrived too long ago to answer automatically and are marked for a person"
    return words + "."


def _since(connection: WhatsAppConnection):
    """From a little before the newest inbound message we stored; for a number with none yet, a day."""
    last = (
        Message.objects.filter(connection=connection, direction=Direction.INBOUND)
        .order_by("-created_at").values_list("created_at", flat=True).first()
    )
    if last is None:
        return timezone.now() - FIRST_LOOKBACK
    return last - OVERLAP


def _missing(connection: WhatsAppConnection, rows: list[dict]) -> list:
    """History rows (Kapso's listing shape) as webhook payloads, parsed, minus those we have."""
    items = []
    for row in rows:
        kapso_fields = row.get("kapso") if isinstance(row.get("kapso"), dict) else {}
        if kapso_fields.get("direction", "inbound") != "inbound":
            continue
        payload = {
            "message": row,
            "conversation": {"id": kapso_fields.get("whatsapp_conversation_id") or "",
                             "phone_number": kapso_fields.get("phone_number")},
            "phone_number_id": connection.phone_number_id,
        }
        try:
            items.append(parse_inbound(payload))
        except PayloadError as error:
            logger.warning("skipped an unreadable message in Kapso's history of %s: %s", connection.pk, error)
    known = set(
        Message.objects.filter(connection=connection, wamid__in=[item.wamid for item in items])
        .values_list("wamid", flat=True)
    )
    unique = {item.wamid: item for item in items if item.wamid not in known}
    return sorted(unique.values(), key=lambda item: item.sent_at)  # oldest first, as they were written


def _receipt(connection: WhatsAppConnection, items: list, late: list) -> None:
    """A WebhookEvent for what catch-up ingested, so Deliveries shows where these messages came from."""
    wamids = sorted(item.wamid for item in items)
    body = json.dumps({"type": MESSAGE_RECEIVED, "batch": True, "data": [item.raw for item in items]}).encode()
    key = "catch-up:" + hashlib.sha256("\n".join(wamids).encode()).hexdigest()
    detail = f"Caught up from Kapso's history: {len(items)} missed message(s)"
    if late:
        detail += f", {len(late)} too old to answer automatically (flagged for a person)"
    event_record(
        kind=WebhookKind.MESSAGES, event=MESSAGE_RECEIVED, headers={"X-Idempotency-Key": key}, raw=body,
        org_id=connection.org_id, connection_id=connection.id, result=ProcessingResult.PROCESSED, detail=detail + ".",
    )
