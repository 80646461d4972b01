"""Receiving Kapso deliveries: store the receipt, then hand each event to its handler.

Everything a delivery changes happens in one transaction with its WebhookEvent row, whose unique
idempotency key makes a redelivery a no-op. Nothing here calls Kapso or a model.
"""

import hashlib
import json
import logging
import uuid

from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from apps.conversations.models import statuses_before
from apps.kapso.payloads import STATUS_EVENTS, PayloadError, split_delivery

from .handlers import MESSAGE_HANDLERS, prepare_message_events
from .models import ProcessingResult, WebhookKind

logger = logging.getLogger(__name__)

# Raw SQL for the hot path: ON CONFLICT DO NOTHING RETURNING tells a first delivery from a
# redelivery in one round trip, without an exception and a savepoint.
_EVENT_INSERT = """
INSERT INTO webhooks_webhookevent
    (id, org_id, connection_id, kind, event, idempotency_key, headers, body, signature_valid, result, detail,
     processed_at, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, %s, %s, %s, now(), now())
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""

KEPT_HEADERS = ("X-Webhook-Event", "X-Idempotency-Key", "X-Webhook-Payload-Version", "X-Webhook-Batch", "X-Batch-Size")


UNUSED_EVENT = "Switchboard does not use this event."


class DeliveryError(ValueError):
    """A signed delivery we cannot read: answered 400, nothing stored."""


def idempotency_key_of(headers, raw: bytes) -> str:
    key = (headers.get("X-Idempotency-Key") or "").strip()
    # Without Kapso's key, the body's hash still turns byte-identical redeliveries into no-ops.
    return key[:200] if key else "sha256:" + hashlib.sha256(raw).hexdigest()


def event_record(
    *, kind: str, event: str, headers, raw: bytes, org_id=None, connection_id=None,
    result: str = ProcessingResult.PENDING, detail: str = "",
) -> uuid.UUID | None:
    """Insert the receipt; None when this delivery was already stored."""
    with db.cursor() as cursor:
        cursor.execute(_EVENT_INSERT, _event_params(kind, event, headers, raw, org_id, connection_id, result, detail))
        row = cursor.fetchone()
    return row[0] if row else None


def _event_params(kind, event, headers, raw, org_id, connection_id, result, detail) -> list:
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    processed_at = timezone.now() if result != ProcessingResult.PENDING else None
    return [uuid.uuid4(), org_id, connection_id, kind, event[:100], idempotency_key_of(headers, raw),
            json.dumps(kept), raw.decode("utf-8", errors="replace"), result, detail, processed_at]


# Three of every four deliveries are a reply's sent/delivered/read status, and the usual one is about
# a message of ours: moved forward, or already past that status (our own record of the send says
# `sent` before Kapso's `sent` arrives). Its effect and its receipt in one statement (atomic on its
# own): the acknowledgement makes 1 statement instead of BEGIN, INSERT, UPDATE, SELECT, COMMIT. When
# no message has that wamid (the status overtook our record of the send, or it was sent outside
# Switchboard) nothing is written and the delivery takes the general path. A redelivery applies again
# an update that is then a no-op (a status only moves forward) and is answered as a duplicate.
_STATUS_APPLY_WITH_RECEIPT = f"""
WITH target AS (
    SELECT id FROM conversations_message WHERE connection_id = %s AND wamid = %s
), applied AS (
    UPDATE conversations_message m SET status = %s, updated_at = now()
    FROM target WHERE m.id = target.id AND m.direction = 'outbound' AND m.status = ANY(%s)
    RETURNING m.id
), receipt AS (
    {_EVENT_INSERT.replace("VALUES (", "SELECT ").replace(
        "now(), now())", "now(), now() WHERE EXISTS (SELECT 1 FROM target)")}
)
SELECT (SELECT count(*) FROM target), (SELECT count(*) FROM receipt)
"""


def _status_with_receipt(connection, headers, raw: bytes, event: str, updates) -> str | None:
    """The usual status delivery in one statement: 'processed' or 'duplicate'; None when the
    general path must handle it (then nothing was written)."""
    if len(updates) != 1 or updates[0].status not in ("sent", "delivered", "read"):
        return None  # failures (with their error) and batches are rare: the general path
    update = updates[0]
    if update.origin == "business_app":
        return None  # a reply typed in the WhatsApp Business app: an operator message, a handoff
    params = [connection.id, update.wamid, update.status, statuses_before(update.status),
              *_event_params(WebhookKind.MESSAGES, event, headers, raw, connection.org_id, connection.id,
                             ProcessingResult.PROCESSED, "")]
    with db.cursor() as cursor:
        cursor.execute(_STATUS_APPLY_WITH_RECEIPT, params)
        found, stored = cursor.fetchone()
    if not found:
        return None
    return "processed" if stored else "duplicate"


def message_delivery_receive(*, connection, headers, raw: bytes, items: list[tuple[str, dict]]) -> str:
    """A signed delivery to the messages webhook, already split into its events (split_delivery).
    Returns 'processed', 'ignored' or 'duplicate'."""
    try:
        event, prepared = prepare_message_events(items)
    except PayloadError as error:
        return _unreadable_record(connection, headers, raw, items, error)
    if event in STATUS_EVENTS:
        fast = _status_with_receipt(connection, headers, raw, event, prepared)
        if fast is not None:
            return fast
    handler = MESSAGE_HANDLERS.get(event)
    result = ProcessingResult.PROCESSED if handler else ProcessingResult.IGNORED
    with transaction.atomic():
        event_id = event_record(
            kind=WebhookKind.MESSAGES, event=event, headers=headers, raw=raw, org_id=connection.org_id,
            connection_id=connection.id, result=result,
            detail="" if handler else UNUSED_EVENT,
        )
        if event_id is None:
            return "duplicate"
        if handler is None:
            logger.info("ignored Kapso event %s for connection %s", event, connection.id)
            return "ignored"
        handler(connection, prepared)
    return "processed"


def _unreadable_record(connection, headers, raw: bytes, items: list[tuple[str, dict]], error: PayloadError) -> str:
    """Signed by Kapso, but in a shape we cannot read. Kept as failed with the reason, for an admin
    to see and reprocess once Switchboard understands it, and answered 200: a 4xx would make Kapso
    retry it in vain and may get the number's webhook paused."""
    event = next((name for name, _ in items if name), "")
    logger.warning("unreadable Kapso delivery %s for connection %s: %s", event, connection.id, error)
    event_id = event_record(
        kind=WebhookKind.MESSAGES, event=event, headers=headers, raw=raw, org_id=connection.org_id,
        connection_id=connection.id, result=ProcessingResult.FAILED, detail=f"Could not read this delivery: {error}",
    )
    return "failed" if event_id else "duplicate"


def project_delivery_receive(*, headers, raw: bytes, body) -> str:
    """A signed delivery to the project webhook: stored now, processed by a task (it calls Kapso)."""
    from apps.orgs.models import Organization

    from .project import PROJECT_EVENTS, customer_id_of, unwrap_project_payload
    from .tasks import project_event_process

    try:
        event, payload = unwrap_project_payload(body, headers.get("X-Webhook-Event"))
    except PayloadError as error:
        raise DeliveryError(str(error)) from error
    customer_id = customer_id_of(payload)
    org_id = None
    if customer_id:
        org_id = Organization.objects.filter(kapso_customer_id=customer_id).values_list("id", flat=True).first()
    known = event in PROJECT_EVENTS
    with transaction.atomic():
        event_id = event_record(
            kind=WebhookKind.PROJECT, event=event, headers=headers, raw=raw, org_id=org_id,
            result=ProcessingResult.PENDING if known else ProcessingResult.IGNORED,
            detail="" if known else UNUSED_EVENT,
        )
        if event_id is None:
            return "duplicate"
        if not known:
            logger.info("ignored Kapso project event %s", event)
            return "ignored"
        from apps.core.queue import enqueue

        transaction.on_commit(lambda: enqueue(project_event_process, str(event_id)))
    return "accepted"


# --- Reprocessing from the dashboard ----------------------------------------------------------------


def event_reprocess(*, event) -> str:
    """Run a stored delivery again (an admin's button on a failed one). Project events go back to
    their task (it calls Kapso); message events are applied again here, in one transaction, and
    the unique constraints (wamid, run per thread) make a second application a no-op for whatever
    the first one already stored. Returns the new result."""
    from .models import WebhookEvent
    from .tasks import project_event_process

    if event.kind == WebhookKind.PROJECT:
        from apps.core.queue import enqueue

        WebhookEvent.objects.filter(pk=event.pk).update(
            result=ProcessingResult.PENDING, detail="", updated_at=timezone.now())

        transaction.on_commit(lambda: enqueue(project_event_process, str(event.pk)))
        return ProcessingResult.PENDING
    return _message_event_reapply(event)


def _message_event_reapply(event) -> str:
    from .models import WebhookEvent

    connection = event.connection
    try:
        if connection is None:
            raise DeliveryError("the WhatsApp connection of this delivery no longer exists")
        items = split_delivery(json.loads(event.body), event.event)
        name, prepared = prepare_message_events(items)
        handler = MESSAGE_HANDLERS.get(name)
        with transaction.atomic():
            if handler is not None:
                handler(connection, prepared)
            result, detail = (ProcessingResult.PROCESSED, "Reprocessed.") if handler else (
                ProcessingResult.IGNORED, UNUSED_EVENT)
            WebhookEvent.objects.filter(pk=event.pk).update(
                result=result, detail=detail, processed_at=timezone.now(), updated_at=timezone.now())
    except (PayloadError, DeliveryError, ValueError) as error:
        result = ProcessingResult.FAILED
        WebhookEvent.objects.filter(pk=event.pk).update(
            result=result, detail=str(error)[:2000], processed_at=timezone.now(), updated_at=timezone.now())
    return result
