"""Enqueueing Celery work without ever failing the caller.

The database row is the truth and a broker message is only a nudge (docs/architecture.md §1): when Redis is
unreachable the caller carries on, and the sweeper re-enqueues what the database says is pending.
"""

import logging

logger = logging.getLogger(__name__)


def enqueue(task, *args, countdown: float | None = None) -> bool:
    try:
        task.apply_async(args=args, countdown=countdown, retry=False)
    except Exception:  # noqa: BLE001 - any broker failure: the sweeper will pick the work up
        logger.warning("could not enqueue %s%r; the sweeper will retry", task.name, args, exc_info=True)
        return False
    return True
