"""Reads of threads and messages."""

from datetime import datetime, timedelta

from django.utils import timezone

from .models import Direction, Message, Thread

WINDOW = timedelta(hours=24)


def thread_for_phone(*, connection, phone: str) -> Thread | None:
    return Thread.objects.filter(connection=connection, external_id=f"whatsapp:{phone}").first()


def window_state(*, thread: Thread) -> dict:
    """Meta's 24-hour customer-service window, from the contact's last inbound message."""
    if thread.last_inbound_at is None:
        return {"open": False, "closes_at": None, "seconds_left": 0}
    closes_at = thread.last_inbound_at + WINDOW
    seconds_left = max(0, int((closes_at - timezone.now()).total_seconds()))
    return {"open": seconds_left > 0, "closes_at": closes_at, "seconds_left": seconds_left}


def thread_messages_page(*, thread: Thread, limit: int, before: datetime | None = None):
    """`limit` messages before `before`, oldest first, and the cursor for the page before them."""
    qs = Message.objects.filter(thread=thread)
    if before is not None:
        qs = qs.filter(created_at__lt=before)
    newest_first = list(qs.order_by("-created_at", "-id")[: limit + 1])
    more = len(newest_first) > limit
    page = list(reversed(newest_first[:limit]))
    return page, (page[0].created_at if more and page else None)


def recent_outbound(*, thread: Thread, limit: int) -> list[Message]:
    return list(
        Message.objects.filter(thread=thread, direction=Direction.OUTBOUND).order_by("-created_at", "-id")[:limit]
    )


def history_for_turn(*, thread: Thread, run_id, window: int) -> list[Message]:
    """The conversation a turn sees: the last `window` messages, without those waiting for the
    next turn (they arrived after this turn started and will be answered by it)."""
    qs = (
        Message.objects.filter(thread=thread)
        .exclude(direction=Direction.INBOUND, run__status="pending")
        .exclude(status="failed", direction=Direction.OUTBOUND)
        .order_by("-created_at", "-id")
        .only("direction", "author", "text", "created_at", "run_id")
    )
    return list(reversed(qs[:window]))
