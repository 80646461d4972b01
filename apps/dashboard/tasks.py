"""Playground turns run on the `agents` queue, like WhatsApp turns: seconds of model I/O belong
on the thread-pool worker, not in a web worker that other people's pages are waiting for."""

import logging

from celery import shared_task
from django.core.cache import cache

from . import playground

logger = logging.getLogger(__name__)
QUEUE = "agents"


def enqueue_playground_turn(thread_id) -> bool:
    try:
        playground_turn.apply_async(args=(str(thread_id),), queue=QUEUE, retry=False)
    except Exception:  # noqa: BLE001 - the page says the agent did not answer; the person can try again
        logger.warning("could not enqueue the playground turn of %s", thread_id, exc_info=True)
        return False
    return True


@shared_task(bind=True, ignore_result=True, max_retries=120)
def playground_turn(self, thread_id: str) -> None:
    # One turn at a time per playground thread: a second message waits and is answered after.
    lock = f"playground-turn:{thread_id}"
    if not cache.add(lock, "1", timeout=int(playground.TURN_BUDGET_SECONDS) + 30):
        raise self.retry(countdown=1)
    try:
        playground.playground_turn(thread_id=thread_id)
    finally:
        cache.delete(lock)
