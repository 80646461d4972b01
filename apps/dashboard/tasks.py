"""Playground turns run on the `agents` queue (CELERY_TASK_ROUTES), like WhatsApp turns: seconds
of model I/O belong on the thread-pool worker, not in a web worker that other people's pages are
waiting for."""

from celery import shared_task
from django.core.cache import cache

from apps.core.queue import enqueue

from . import playground


def enqueue_playground_turn(thread_id) -> bool:
    # False when the broker is down: the page says the agent did not answer; the person can retry.
    return enqueue(playground_turn, str(thread_id))


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
