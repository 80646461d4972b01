"""The sandbox's background work (the default queue): webhook deliveries, batches, status progression.

Tasks take ids and call delivery/services; they run after the request that created the work has
answered, as Kapso's own deliveries do.
"""

from celery import shared_task

from . import delivery, services


@shared_task(ignore_result=True)
def deliver_webhook(delivery_id: str) -> None:
    delivery.deliver(delivery_id)


@shared_task(ignore_result=True)
def flush_batch(delivery_id: str) -> None:
    delivery.flush_due(delivery_id)


@shared_task(ignore_result=True)
def advance_message(message_id: int, status: str, fail_later: bool = False) -> None:
    services.message_advance_task(message_id, status, fail_later)


@shared_task(ignore_result=True)
def redeliver_webhook(delivery_id: str) -> None:
    delivery.deliver(delivery_id, manual=True)
