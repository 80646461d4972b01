"""Webhook deliveries, as Kapso makes them (docs/kapso.md §4.2).

Every event becomes a Delivery row per subscribed webhook, whose body bytes are fixed once and whose
id is the X-Idempotency-Key, identical on every retry and on a manual redelivery. The POST happens in
a Celery task after the creating transaction commits: never inside a request, because Switchboard's
webhook and the sandbox are served by the same web server and Switchboard may be waiting on us.
Failed deliveries are retried after 10 s, 40 s and 90 s; a batch that failed for good falls back to
one delivery per message. Received messages may be buffered into batches per conversation.
"""

import logging
from datetime import timedelta

import httpx
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.queue import enqueue
from apps.kapso.signatures import sign

from . import conf
from .models import Conversation, Delivery, DeliveryStatus, PhoneNumber, Webhook
from .payloads import compact

logger = logging.getLogger(__name__)

PROJECT_EVENTS = ["whatsapp.phone_number.created", "whatsapp.phone_number.deleted"]
RECEIVED = "whatsapp.message.received"


def default_project_webhook() -> Webhook | None:
    """The project webhook a Kapso project has configured in its dashboard, from the sandbox's
    settings (URL and shared secret); kept in step with them."""
    url = conf.project_webhook_url()
    if not url:
        return None
    secret = conf.project_webhook_secret()
    webhook = Webhook.objects.filter(phone_number=None, url=url).order_by("created_at").first()
    if webhook is None:
        return Webhook.objects.create(url=url, secret_key=secret, events=PROJECT_EVENTS, headers={})
    if webhook.secret_key != secret:
        Webhook.objects.filter(pk=webhook.pk).update(secret_key=secret)
        webhook.secret_key = secret
    return webhook


def subscribed_webhooks(event: str, number: PhoneNumber | None) -> list[Webhook]:
    if event in PROJECT_EVENTS:
        default_project_webhook()
        candidates = Webhook.objects.filter(phone_number=None, active=True)
    else:
        candidates = Webhook.objects.filter(phone_number=number, active=True)
    return [webhook for webhook in candidates if event in webhook.events]


def emit(event: str, payload: dict, *, number: PhoneNumber | None, conversation: Conversation | None = None,
         batch_item: dict | None = None, sequence: int = 0) -> list[Delivery]:
    """Create the deliveries of one event. `batch_item` is the payload as it appears inside a batch,
    used for webhooks that buffer this event."""
    deliveries = []
    for webhook in subscribed_webhooks(event, number):
        if webhook.buffer_enabled and event in (webhook.buffer_events or [event]) and conversation is not None:
            deliveries.append(_buffer(webhook, event, batch_item or payload, conversation, sequence))
        else:
            deliveries.append(_create(webhook, event, compact(payload), number=number, conversation=conversation))
    return deliveries


def _create(webhook: Webhook, event: str, body: bytes, *, number, conversation, batch: bool = False) -> Delivery:
    delivery = Delivery.objects.create(
        webhook=webhook, event=event, body=body.decode(), batch=batch, conversation=conversation,
        phone_number_id=number.phone_number_id if number else "",
    )
    schedule(delivery.id)
    return delivery


def schedule(delivery_id, countdown: float = 0.0) -> None:
    from .tasks import deliver_webhook

    transaction.on_commit(lambda: enqueue(deliver_webhook, str(delivery_id), countdown=countdown or None))


# --- Buffering (docs/kapso.md §4.2 "Buffering", §4.3) ---------------------------------------------------


def _buffer(webhook: Webhook, event: str, item: dict, conversation: Conversation, sequence: int) -> Delivery:
    """Add a message to the conversation's open batch (a debounce: each message restarts the window);
    flush at once when the batch is full."""
    window = webhook.buffer_window_seconds or 5
    limit = webhook.max_buffer_size or 50
    flush_at = timezone.now() + timedelta(seconds=window)
    entry = {"sequence": sequence, "payload": item}
    open_batch = _open_batch(webhook, conversation)
    if open_batch is None:
        try:
            with transaction.atomic():
                open_batch = Delivery.objects.create(
                    webhook=webhook, event=event, status=DeliveryStatus.BUFFERING, batch=True, items=[entry],
                    conversation=conversation, flush_at=flush_at,
                    phone_number_id=conversation.phone_number.phone_number_id,
                )
        except IntegrityError:  # another message opened it meanwhile: join that one
            open_batch = _open_batch(webhook, conversation)
            open_batch.items.append(entry)
    else:
        open_batch.items.append(entry)
    open_batch.flush_at = flush_at
    open_batch.save(update_fields=["items", "flush_at"])
    if len(open_batch.items) >= limit:
        flush(open_batch)
    else:
        _schedule_flush(open_batch.id, window)
    return open_batch


def _open_batch(webhook: Webhook, conversation: Conversation) -> Delivery | None:
    return (
        Delivery.objects.select_for_update()
        .filter(webhook=webhook, conversation=conversation, status=DeliveryStatus.BUFFERING)
        .first()
    )


def _schedule_flush(delivery_id, countdown: float) -> None:
    from .tasks import flush_batch

    transaction.on_commit(lambda: enqueue(flush_batch, str(delivery_id), countdown=countdown))


def flush_due(delivery_id) -> None:
    """Task body: close the batch if its window has passed, else look again when it will have."""
    with transaction.atomic():
        batch = Delivery.objects.select_for_update().select_related("webhook").filter(
            pk=delivery_id, status=DeliveryStatus.BUFFERING).first()
        if batch is None:
            return
        remaining = (batch.flush_at - timezone.now()).total_seconds() if batch.flush_at else 0
        if remaining > 0.05:
            _schedule_flush(batch.id, remaining)
            return
        flush(batch)


def flush(batch: Delivery) -> None:
    items = sorted(batch.items, key=lambda entry: entry["sequence"])
    window = batch.webhook.buffer_window_seconds or 5
    body = {
        "type": batch.event,
        "batch": True,
        "data": [entry["payload"] for entry in items],
        "batch_info": {
            "size": len(items),
            "window_ms": window * 1000,
            "first_sequence": items[0]["sequence"],
            "last_sequence": items[-1]["sequence"],
            "conversation_id": str(batch.conversation_id),
        },
    }
    batch.body = compact(body).decode()
    batch.status = DeliveryStatus.PENDING
    batch.save(update_fields=["body", "status"])
    schedule(batch.id)


# --- Sending a delivery ------------------------------------------------------------------------------


def headers_for(delivery: Delivery, body: bytes) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Kapso-Sandbox/1.0",
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Signature": sign(delivery.webhook.secret_key or "", body),
        "X-Idempotency-Key": str(delivery.id),
        "X-Webhook-Payload-Version": delivery.webhook.payload_version or "v2",
    }
    if delivery.batch:
        headers["X-Webhook-Batch"] = "true"
        headers["X-Batch-Size"] = str(len(delivery.items))
    headers.update({str(k): str(v) for k, v in (delivery.webhook.headers or {}).items()})
    return headers


def deliver(delivery_id, *, manual: bool = False) -> Delivery | None:
    """POST a delivery. Automatic attempts stop once it is delivered or failed; a manual redelivery
    (the phone page's button) sends the same bytes with the same idempotency key again."""
    delivery = Delivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status == DeliveryStatus.BUFFERING:
        return delivery
    if not manual and delivery.status != DeliveryStatus.PENDING:
        return delivery
    body = delivery.body.encode()
    status, text, error = None, "", ""
    if not manual and _in_outage(delivery):
        _record_attempt(delivery, status=None, text="", error="ConnectError: the receiver is down (simulated outage)",
                        manual=False)
        return delivery
    try:
        response = httpx.post(delivery.webhook.url, content=body, headers=headers_for(delivery, body),
                              timeout=conf.delivery_timeout())
        status, text = response.status_code, response.text[:1000]
    except httpx.HTTPError as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:1000]
    _record_attempt(delivery, status=status, text=text, error=error, manual=manual)
    return delivery


def _in_outage(delivery: Delivery) -> bool:
    """The phone page's outage: the number's receiver (Switchboard) cannot be reached until then."""
    if not delivery.phone_number_id:
        return False
    return PhoneNumber.objects.filter(
        phone_number_id=delivery.phone_number_id, outage_until__gt=timezone.now()).exists()


def _record_attempt(delivery: Delivery, *, status: int | None, text: str, error: str, manual: bool) -> None:
    now = timezone.now()
    delivery.attempt_count += 1
    delivery.response_status, delivery.response_body, delivery.last_error = status, text, error
    delivery.last_attempt_at = now
    if status is not None and 200 <= status < 300:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
        if not delivery.last_error:
            delivery.last_error = ""
    elif not manual:
        delays = conf.retry_delays()
        if delivery.attempt_count <= len(delays):
            schedule_later = delays[delivery.attempt_count - 1]
            logger.info("delivery %s got %s; retrying in %ss", delivery.id, status or error, schedule_later)
            with transaction.atomic():
                schedule(delivery.id, schedule_later)
        else:
            delivery.status, delivery.failed_at = DeliveryStatus.FAILED, now
            if delivery.batch:
                _fall_back_to_single(delivery)
    delivery.save()


def _fall_back_to_single(batch: Delivery) -> None:
    """Kapso: after the last failed attempt, batched messages fall back to individual delivery."""
    with transaction.atomic():
        for entry in sorted(batch.items, key=lambda e: e["sequence"]):
            single = Delivery.objects.create(
                webhook=batch.webhook, event=batch.event, body=compact(entry["payload"]).decode(),
                conversation=batch.conversation, phone_number_id=batch.phone_number_id,
            )
            schedule(single.id)
