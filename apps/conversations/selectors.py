"""Reads of threads and messages."""

import re
import uuid
from datetime import UTC, datetime, timedelta

from django.db.models import BooleanField, F, Max, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone

from .models import NOTICE_KEY, Direction, Message, Thread

WINDOW = timedelta(hours=24)


def thread_for_phone(*, connection, phone: str) -> Thread | None:
    return Thread.objects.filter(connection=connection, contact_phone=phone).order_by("created_at").first()


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


def quoted_messages(*, thread: Thread, wamids: list[str]) -> dict[str, Message]:
    """The thread's messages with these wamids (what contacts' replies quote), by wamid."""
    wamids = [w for w in wamids if w]
    if not wamids:
        return {}
    rows = Message.objects.filter(thread=thread, wamid__in=wamids).only("wamid", "text", "type", "author", "direction")
    return {row.wamid: row for row in rows}


def recent_outbound(*, thread: Thread, limit: int) -> list[Message]:
    return list(
        Message.objects.filter(thread=thread, direction=Direction.OUTBOUND).order_by("-created_at", "-id")[:limit]
    )


def run_messages(*, run_id) -> list[Message]:
    """The inbound messages a turn answers, oldest first."""
    return list(Message.objects.filter(run_id=run_id, direction=Direction.INBOUND).order_by("created_at", "id"))


def last_inbound_wamid(*, thread: Thread) -> str | None:
    return (
        Message.objects.filter(thread=thread, direction=Direction.INBOUND, wamid__isnull=False)
        .order_by("-created_at", "-id").values_list("wamid", flat=True).first()
    )


def history_for_turn(*, thread: Thread, run_id, window: int, since: datetime | None = None) -> list[Message]:
    """The conversation a turn sees: the last `window` messages, without those waiting for the
    next turn (they arrived after this turn started and will be answered by it).

    The messages this turn answers come last. One that arrived while the previous turn was
    thinking is older than that turn's reply, yet that reply did not answer it: in creation order
    the model would be handed a conversation that ends with its own answer.

    `since`: only messages created after it (the contact's reset command)."""
    qs = (
        Message.objects.filter(thread=thread, **({"created_at__gt": since} if since else {}))
        .exclude(direction=Direction.INBOUND, run__status="pending")
        .exclude(status="failed", direction=Direction.OUTBOUND)
        .exclude(raw__has_key=NOTICE_KEY)  # acknowledgements and other notices are not the conversation
        .order_by("-created_at", "-id")
        .only("direction", "author", "type", "text", "media", "media_status", "media_file", "reply_to_wamid",
              "wamid", "created_at", "run_id")
    )
    history = list(reversed(qs[:window]))
    answered_now = [m for m in history if m.direction == Direction.INBOUND and m.run_id == run_id]
    return [m for m in history if m not in answered_now] + answered_now


# --- The dashboard's inbox and open thread ---------------------------------------------------------

INBOX_PAGE_SIZE = 50
# Shorter text cannot use the trigram index (and matches nearly everything anyway): search names
# and numbers only.
MIN_TEXT_SEARCH = 3
INBOX_STATES = ("unanswered", "human", "agent", "open")


def inbox_threads(
    *, org, q: str = "", connection_id=None, environment: str = "", state: str = "",
    cursor: str = "", limit: int = INBOX_PAGE_SIZE, assigned: str = "", user=None, label: str = "",
    needs_person: bool | None = None, attribute: str = "", value: str = "",
) -> tuple[list[Thread], str | None]:
    """A page of the org's WhatsApp threads, newest activity first, each with `last_message`;
    and the cursor of the next page. Keyset pagination: no COUNT over a large table, and every
    page costs the same however deep it is. Two queries (three or four when searching text or
    asking for unanswered threads, see _page).

    `assigned` is "me" (assigned to `user`) or "none" (human threads nobody took); `needs_person`
    True/False keeps only the threads that wait for a person / the others; `attribute` and `value`
    keep the threads whose contact record has that attribute value (apps.contacts)."""
    last = Message.objects.filter(thread=OuterRef("pk")).order_by("-created_at", "-id")
    base = Thread.objects.on_whatsapp().filter(org=org)
    if assigned == "me" and user is not None:
        base = base.filter(assigned_to=user)
    elif assigned == "none":
        base = base.filter(handoff="human", assigned_to__isnull=True)
    if label:
        base = base.filter(labels__contains=[label])
    if needs_person is not None:
        base = base.filter(needs_person_since__isnull=not needs_person)
    if attribute:
        from apps.contacts.selectors import threads_with_contact_attribute

        base = base.filter(threads_with_contact_attribute(org=org, attribute=attribute, value=value))
    if connection_id:
        base = base.filter(connection_id=connection_id)
    if environment:
        base = base.filter(connection__environment=environment)
    if state in ("human", "agent"):
        base = base.filter(handoff=state)
    elif state == "open":
        base = base.filter(last_inbound_at__gt=timezone.now() - WINDOW)
    after = _cursor_filter(cursor)
    if after is not None:
        base = base.filter(after)
    qs = base.select_related("connection", "assigned_to").annotate(last_message_id=Subquery(last.values("id")[:1]))
    per_thread, complete = Q(), Q()  # the same condition, checked thread by thread / through indexes
    if state == "unanswered":
        qs = qs.annotate(last_direction=Subquery(last.values("direction")[:1]))
        per_thread &= Q(last_direction=Direction.INBOUND)
        complete &= Q(last_direction=Direction.INBOUND)
    if q.strip():
        per_thread &= _inbox_search(org, q.strip(), per_thread=True)
        complete &= _inbox_search(org, q.strip(), per_thread=False)
    window = TEXT_SEARCH_WINDOW if len(q.strip()) >= MIN_TEXT_SEARCH else STATE_WINDOW
    threads = _page(base, qs, per_thread, complete, limit, window)
    more, threads = len(threads) > limit, threads[:limit]
    by_id = Message.objects.in_bulk([t.last_message_id for t in threads if t.last_message_id])
    for thread in threads:
        thread.last_message = by_id.get(thread.last_message_id)
    return threads, (_cursor_of(threads[-1]) if more else None)


# Measured on 10,000 threads and 1,000,000 messages: a condition that needs each thread's messages
# (its last direction, or text containing a phrase) is cheap to check thread by thread, newest first,
# when the phrase is common (the first few messages of each thread match), and collecting matches
# through an index is cheap when it is rare (~8 ms through the trigram index for a word in 1 message
# in 400) and slow when it is common (~210 ms for a word in 136,000 messages). So: first check the
# newest threads one by one, up to a window. If that fills the page, it is the right page (every
# thread outside the window is older). Otherwise the condition is rare: use the indexes. Checking a
# thread's last message is cheap; scanning a thread's texts costs ~0.04 ms for one of ~100 messages
# without a match, so the window for text is smaller (150 threads: ~6 ms when nothing matches).
STATE_WINDOW = 1000
TEXT_SEARCH_WINDOW = 150
# The per-thread check reads the thread's messages through (thread_id, …) and tests each text with
# strpos(), which no index serves. Written as UPPER(text) LIKE (what icontains compiles to), it let
# the planner AND the thread's index with the trigram index for every thread of the window: one full
# trigram lookup per thread (18 ms each, 150 of them, 2.8 s for a common word; 0.9 ms each, 135 ms,
# for a rare one). strpos(UPPER(text), UPPER(q)) > 0 is what UPPER(text) LIKE UPPER('%q%') means
# (no wildcards to escape). OFFSET 0 keeps PostgreSQL from turning this into a join over every
# matching message: it stays a per-thread check, evaluated newest thread first.
_THREAD_HAS_TEXT = (
    "EXISTS (SELECT 1 FROM conversations_message m WHERE m.thread_id = conversations_thread.id"
    " AND STRPOS(UPPER(m.text), UPPER(%s)) > 0 OFFSET 0)"
)


def _page(base, qs, per_thread: Q, complete: Q, limit: int, window: int) -> list[Thread]:
    order = (F("last_message_at").desc(), "-id")  # DESC: NULLs first, as the (org, -activity) index
    if per_thread:
        newest = base.order_by(*order).values("pk")[:window]
        found = list(qs.filter(per_thread, pk__in=Subquery(newest)).order_by(*order)[: limit + 1])
        if len(found) > limit:
            return found
    return list(qs.filter(complete).order_by(*order)[: limit + 1])


def _inbox_search(org, q: str, *, per_thread: bool) -> Q:
    condition = Q(contact_name__icontains=q)
    digits = re.sub(r"\D", "", q)
    if len(digits) >= 3:
        condition |= Q(contact_phone__contains=digits)
    if len(q) >= MIN_TEXT_SEARCH:
        if per_thread:
            condition |= Q(RawSQL(_THREAD_HAS_TEXT, [q], output_field=BooleanField()))
        else:
            condition |= Q(pk__in=Message.objects.filter(org=org, text__icontains=q).values("thread_id"))
    return condition


def _cursor_of(thread: Thread) -> str:
    micros = int(thread.last_message_at.timestamp() * 1_000_000) if thread.last_message_at else "n"
    return f"{micros}.{thread.pk.hex}"


def _cursor_filter(cursor: str):
    """The threads after the cursor in (last_message_at DESC NULLS FIRST, id DESC) order; None for
    no cursor or a malformed one (then the first page is shown)."""
    stamp, _, pk = (cursor or "").partition(".")
    try:
        key = uuid.UUID(pk)
        when = None if stamp == "n" else datetime.fromtimestamp(int(stamp) / 1_000_000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    if when is None:
        return Q(last_message_at__isnull=True, pk__lt=key) | Q(last_message_at__isnull=False)
    return Q(last_message_at__lt=when) | Q(last_message_at=when, pk__lt=key)


def threads_needing_person(*, org, limit: int = 20) -> list[Thread]:
    """Threads the agent handed to people that nobody answered yet, longest waiting first."""
    return list(
        Thread.objects.on_whatsapp().filter(org=org, needs_person_since__isnull=False)
        .select_related("connection", "assigned_to").order_by("needs_person_since", "id")[:limit]
    )


def labels_in_use(*, org, limit: int = 100) -> list[str]:
    """The labels on the org's threads, for the inbox filter."""
    from django.db.models import Func

    unnested = Thread.objects.filter(org=org).annotate(label=Func("labels", function="unnest")).values("label")
    return sorted({row["label"] for row in unnested.distinct()[:limit]})


def needs_person_count(*, org) -> int:
    return Thread.objects.on_whatsapp().filter(org=org, needs_person_since__isnull=False).count()


def thread_is_stale(*, thread: Thread, now: datetime | None = None) -> bool:
    """An assigned thread in people's hands with no operator reply for ASSIGNED_STALE_MINUTES."""
    from django.conf import settings

    if thread.assigned_to_id is None or thread.handoff != "human":
        return False
    quiet_since = max(filter(None, [thread.handoff_at, thread.last_operator_reply_at]), default=thread.updated_at)
    return (now or timezone.now()) - quiet_since > timedelta(minutes=settings.ASSIGNED_STALE_MINUTES)


def inbox_version(*, org) -> str:
    """Changes whenever a row of the inbox would: new activity or a handoff switch. The live inbox
    asks for it every few seconds and re-renders only when it moved."""
    latest = Thread.objects.on_whatsapp().filter(org=org).aggregate(
        activity=Max("last_message_at"), changed=Max("updated_at")
    )
    return "-".join(str(int(v.timestamp() * 1_000_000)) if v else "0" for v in latest.values())


def messages_changed_since(*, thread: Thread, since: datetime) -> list[Message]:
    """Messages of the thread created or changed (ticks, failures) after `since`; bounded."""
    return list(Message.objects.filter(thread=thread, updated_at__gt=since).order_by("created_at", "id")[:200])


def reply_blocked_reason(*, thread: Thread, template: bool = False) -> str:
    """Why an operator cannot send free text (or, with `template`, an approved template) in this
    thread right now, in plain words; '' if they can. Templates may go outside the 24-hour window."""
    connection = thread.connection
    if thread.opted_out:
        return ("This customer opted out (they wrote STOP), so no message can be sent to them. "
                "If they write START, you can reply again.")
    if connection.status != "connected":
        return (f"The WhatsApp number {connection} is {connection.get_status_display().lower()}. "
                "Reconnect it on the Connections page to reply.")
    if template:
        return ""
    if thread.last_inbound_at is None:
        return ("This customer has never written to this number. WhatsApp lets a business start a "
                "conversation only with a pre-approved template message, not free text.")
    if not window_state(thread=thread)["open"]:
        return ("The customer's last message was more than 24 hours ago. Until they write again, WhatsApp "
                "only allows pre-approved template messages, so a free-text reply cannot be sent.")
    return ""
