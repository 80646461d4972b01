"""Threads and messages: record inbound, the outbox, delivery status, handoff (docs/architecture.md §4)."""

import logging
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as db
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core import metrics
from apps.kapso import client as kapso
from apps.kapso.errors import KapsoError
from apps.kapso.payloads import Contact, InboundMessage, StatusUpdate
from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection

from . import pacing
from .media import MediaUnavailable, has_media, media_fetch_enqueue, media_open
from .models import Author, Direction, Handoff, MediaStatus, Message, MessageStatus, Thread, statuses_before
from .text import split_text

logger = logging.getLogger(__name__)


def external_id_for(contact: Contact) -> str:
    """Fixed when the thread is created: the number when known, else the BSUID."""
    return f"whatsapp:{contact.phone or contact.bsuid}"


@dataclass
class ThreadRef:
    id: uuid.UUID
    handoff: str
    opted_out: bool = False


# One statement that finds the contact's thread (by BSUID first, as Kapso's docs say, then by
# number), or creates it, refreshes it, and tells us its handoff state. A thread that learns the
# contact's other identifier keeps it, so later messages carrying either one land in the same
# thread. Raw SQL because the ORM can neither match-or-insert in one round trip nor keep the newest
# times (GREATEST).
_THREAD_UPSERT = """
WITH found AS (
    SELECT id FROM conversations_thread
    WHERE connection_id = %(connection)s
      AND ((%(bsuid)s <> '' AND contact_bsuid = %(bsuid)s) OR contact_phone = %(phone)s)
    ORDER BY (%(bsuid)s <> '' AND contact_bsuid = %(bsuid)s) DESC, created_at
    LIMIT 1
), updated AS (
    UPDATE conversations_thread t SET
        contact_phone = COALESCE(t.contact_phone, %(phone)s),
        contact_bsuid = CASE WHEN t.contact_bsuid = '' THEN %(bsuid)s ELSE t.contact_bsuid END,
        contact_username = COALESCE(NULLIF(%(username)s, ''), t.contact_username),
        contact_name = COALESCE(NULLIF(%(name)s, ''), t.contact_name),
        kapso_conversation_id = COALESCE(NULLIF(%(conversation)s, ''), t.kapso_conversation_id),
        last_inbound_at = GREATEST(t.last_inbound_at, %(inbound_at)s),
        last_message_at = GREATEST(t.last_message_at, %(message_at)s),
        updated_at = now()
    FROM found WHERE t.id = found.id
    RETURNING t.id, t.handoff, t.opted_out_at IS NOT NULL AS opted_out
), inserted AS (
    INSERT INTO conversations_thread
        (id, org_id, connection_id, external_id, contact_phone, contact_bsuid, contact_username, contact_name,
         kapso_conversation_id, handoff, last_inbound_at, last_message_at, created_at, updated_at)
    SELECT %(id)s, %(org)s, %(connection)s, %(external_id)s, %(phone)s, %(bsuid)s, %(username)s, %(name)s,
           %(conversation)s, 'agent', %(inbound_at)s, %(message_at)s, now(), now()
    WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (connection_id, external_id) DO UPDATE SET
        contact_bsuid = CASE WHEN conversations_thread.contact_bsuid = '' THEN EXCLUDED.contact_bsuid
                             ELSE conversations_thread.contact_bsuid END,
        contact_username = COALESCE(NULLIF(EXCLUDED.contact_username, ''), conversations_thread.contact_username),
        contact_name = COALESCE(NULLIF(EXCLUDED.contact_name, ''), conversations_thread.contact_name),
        kapso_conversation_id = COALESCE(NULLIF(EXCLUDED.kapso_conversation_id, ''),
                                         conversations_thread.kapso_conversation_id),
        last_inbound_at = GREATEST(conversations_thread.last_inbound_at, EXCLUDED.last_inbound_at),
        last_message_at = GREATEST(conversations_thread.last_message_at, EXCLUDED.last_message_at),
        updated_at = now()
    RETURNING id, handoff, opted_out_at IS NOT NULL AS opted_out
)
SELECT id, handoff, opted_out FROM updated UNION ALL SELECT id, handoff, opted_out FROM inserted
"""


def thread_upsert(
    *, connection: WhatsAppConnection, contact: Contact, contact_name: str = "", conversation_id: str = "",
    inbound_at: datetime | None = None, message_at: datetime | None = None,
) -> ThreadRef:
    params = {
        "id": uuid.uuid4(), "org": connection.org_id, "connection": connection.id,
        "external_id": external_id_for(contact), "phone": contact.phone, "bsuid": contact.bsuid,
        "username": contact.username, "name": contact_name, "conversation": conversation_id,
        "inbound_at": inbound_at, "message_at": message_at or inbound_at,
    }
    with db.cursor() as cursor:
        cursor.execute(_THREAD_UPSERT, params)
        thread_id, handoff, opted_out = cursor.fetchone()
    return ThreadRef(id=thread_id, handoff=handoff, opted_out=opted_out)


def inbound_messages_record(
    *, connection: WhatsAppConnection, messages: list[InboundMessage]
) -> dict[uuid.UUID, tuple[ThreadRef, list[uuid.UUID]]]:
    """Store received messages, once each (unique wamid per connection). Returns, per thread, the
    ids of the new messages that a turn should answer: not history backfilled on import, not our
    own outbound echoes, not reactions (they attach to the message they react to). Call inside the
    webhook's transaction."""
    now = timezone.now()
    by_thread: dict[uuid.UUID, tuple[ThreadRef, list[Message]]] = {}
    answerable: set[uuid.UUID] = set()
    for index, item in enumerate(messages):
        if item.is_reaction:
            reaction_apply(connection=connection, item=item)
            continue
        row = _received_row(connection, item, now, index)
        ref = thread_upsert(
            connection=connection, contact=item.contact, contact_name=item.contact_name,
            conversation_id=item.conversation_id,
            inbound_at=min(item.sent_at, now) if row.direction == Direction.INBOUND else None,
            message_at=row.created_at,
        )
        row.thread_id = ref.id
        by_thread.setdefault(ref.id, (ref, []))[1].append(row)
        if item.starts_turn:
            answerable.add(row.id)
    rows = [row for _, thread_rows in by_thread.values() for row in thread_rows]
    inserted = _insert_new(rows)
    media_fetch_enqueue([row.id for row in rows if row.id in inserted and row.media_status == MediaStatus.PENDING])
    new_ids = inserted & answerable
    for ref, thread_rows in by_thread.values():
        new_ids -= _apply_opt_keywords(ref, [row for row in thread_rows if row.id in new_ids])
    return {
        thread_id: (ref, [r.id for r in thread_rows if r.id in new_ids])
        for thread_id, (ref, thread_rows) in by_thread.items()
    }


def _received_row(connection: WhatsAppConnection, item: InboundMessage, now: datetime, index: int) -> Message:
    """A received item as a Message. History imported from the phone keeps its original time, so it
    sorts where it happened; an outbound one (our echo, or a history import of the business's side)
    is the business's message, sent outside Switchboard unless its wamid is already ours."""
    sent_at = min(item.sent_at, now)
    # Consecutive microseconds keep a batch in its order.
    created_at = (sent_at if item.origin == "history_sync" else now) + timedelta(microseconds=index)
    outbound = item.direction == "outbound"
    return Message(
        id=uuid.uuid4(), org_id=connection.org_id, connection_id=connection.id, created_at=created_at,
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
        author=Author.EXTERNAL if outbound else Author.CONTACT, type=item.type, text=item.text, media=item.media,
        wamid=item.wamid, status=MessageStatus.SENT if outbound else MessageStatus.RECEIVED,
        sent_at=sent_at if outbound else None, raw=item.raw,
        media_status=MediaStatus.PENDING if has_media(item.type) else MediaStatus.NONE,
        reply_to_wamid=item.reply_to,
    )


def reaction_apply(*, connection: WhatsAppConnection, item: InboundMessage) -> None:
    """The contact reacted to a message (or removed their reaction: an empty emoji). It changes that
    message's bubble and starts no turn. An older reaction never replaces a newer one."""
    if not item.reaction_to:
        return
    Message.objects.filter(connection=connection, wamid=item.reaction_to).filter(
        Q(reaction_at__isnull=True) | Q(reaction_at__lte=item.sent_at)
    ).update(reaction=item.emoji, reaction_at=item.sent_at, updated_at=timezone.now())


def _apply_opt_keywords(ref: ThreadRef, new_rows: list[Message]) -> set[uuid.UUID]:
    """STOP / START (settings.OPT_OUT_KEYWORDS, OPT_IN_KEYWORDS) change the thread's opt-out state
    (the last one of a batch wins). Returns the keyword messages: they are not questions for the
    agent, so no turn answers them."""
    from .privacy import thread_apply_opt_keyword

    keywords = set()
    for row in new_rows:
        state = thread_apply_opt_keyword(thread_id=ref.id, text=row.text) if row.type == "text" else None
        if state is not None:
            ref.opted_out = state
            keywords.add(row.id)
    return keywords


def _insert_new(rows: list[Message]) -> set[uuid.UUID]:
    """What bulk_create(rows, ignore_conflicts=True) does — the same INSERT … ON CONFLICT DO
    NOTHING with the same values, every concrete field — plus RETURNING id, which tells the rows
    that were new in the same round trip (the ORM cannot return rows from an ignoring insert)."""
    fields = [f for f in Message._meta.concrete_fields if not f.generated]
    columns = ", ".join(db.ops.quote_name(f.column) for f in fields)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    new: set[uuid.UUID] = set()
    for start in range(0, len(rows), 1000):  # PostgreSQL takes at most 65,535 parameters
        batch = rows[start : start + 1000]
        params = [f.get_db_prep_save(f.pre_save(row, add=True), db) for row in batch for f in fields]
        sql = (f"INSERT INTO {db.ops.quote_name(Message._meta.db_table)} ({columns}) "
               f"VALUES {', '.join([row_sql] * len(batch))} ON CONFLICT DO NOTHING RETURNING id")
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            new.update(row[0] for row in cursor.fetchall())
    return new


# --- Delivery status ---------------------------------------------------------------------------


def message_status_apply(*, connection: WhatsAppConnection, update: StatusUpdate, final: bool = False) -> str:
    """Apply a status webhook. Returns 'applied', 'stale' (status only moves forward), 'operator'
    (a reply typed in the WhatsApp Business app), 'external' (a message sent through Kapso but not
    by us, now recorded) or 'unknown' (no message with that wamid yet, but one of ours to that
    contact is in flight and may be it: the caller asks again; with `final` it is recorded)."""
    if update.origin == "business_app" and update.status == "sent":
        business_app_message_record(connection=connection, update=update)
        return "operator"
    changes = {"status": update.status, "updated_at": timezone.now()}
    if update.status == MessageStatus.FAILED:
        changes.update(error_code=update.error_code, error_text=update.error_text or "Delivery failed")
    matched = Message.objects.filter(
        connection=connection, wamid=update.wamid, direction=Direction.OUTBOUND,
        status__in=statuses_before(update.status),
    ).update(**changes)
    if matched:
        return "applied"
    if Message.objects.filter(connection=connection, wamid=update.wamid).exists():
        return "stale"
    if not final and _send_in_flight_to(connection, update.contact):
        return "unknown"  # the status may have overtaken our own record of that send (Kapso is fast)
    outside_message_record(connection=connection, update=update)
    return "external"


def _send_in_flight_to(connection: WhatsAppConnection, contact: Contact) -> bool:
    to_contact = Q(thread__contact_phone=contact.phone) if contact.phone else Q(pk__in=[])
    if contact.bsuid:
        to_contact |= Q(thread__contact_bsuid=contact.bsuid)
    return Message.objects.filter(to_contact, connection=connection, status=MessageStatus.SENDING).exists()


def _outbound_record(
    *, connection: WhatsAppConnection, update: StatusUpdate, author: str, status: str
) -> ThreadRef | None:
    if not update.phone and not update.bsuid:
        logger.warning("outbound message %s has no contact (no number, no BSUID); not recorded", update.wamid)
        return None
    ref = thread_upsert(
        connection=connection, contact=update.contact, contact_name=update.contact_name,
        conversation_id=update.conversation_id, message_at=timezone.now(),
    )
    failed = status == MessageStatus.FAILED
    Message.objects.bulk_create(
        [Message(
            org_id=connection.org_id, thread_id=ref.id, connection_id=connection.id,
            direction=Direction.OUTBOUND, author=author, text=update.text, wamid=update.wamid,
            status=status, sent_at=update.sent_at, raw=update.raw,
            error_code=update.error_code if failed else "",
            error_text=(update.error_text or "Delivery failed") if failed else "",
        )],
        ignore_conflicts=True,
    )
    return ref


def outside_message_record(*, connection: WhatsAppConnection, update: StatusUpdate) -> None:
    """A message that went out through Kapso without us (typed in Kapso's inbox, a Kapso workflow,
    a broadcast): part of the conversation, so it is kept, shown and in the agent's history. Its
    later statuses find it by wamid like ours."""
    _outbound_record(connection=connection, update=update, author=Author.EXTERNAL, status=update.status)


def business_app_message_record(*, connection: WhatsAppConnection, update: StatusUpdate) -> None:
    """A person answered from the WhatsApp Business app on the phone: record their message and
    hand the thread to humans so the agent stops answering (docs/architecture.md §4 "Status")."""
    ref = _outbound_record(connection=connection, update=update, author=Author.OPERATOR, status=MessageStatus.SENT)
    if ref is not None:
        now = timezone.now()
        Thread.objects.filter(pk=ref.id).update(
            handoff=Handoff.HUMAN, handoff_at=Coalesce("handoff_at", now), last_operator_reply_at=now,
            needs_person_since=None,
        )


def thread_mark_read(*, thread: Thread, typing: bool) -> None:
    """Mark the contact's last message read, with Kapso's typing indicator if asked, so the
    contact sees "typing…" while the agent works. Best effort: a failure costs only the ticks."""
    connection = thread.connection
    if connection.status != ConnectionStatus.CONNECTED or not connection.phone_number_id:
        return  # not connected, or the playground (which has no number)
    from .selectors import last_inbound_wamid

    wamid = last_inbound_wamid(thread=thread)
    if not wamid:
        return
    try:
        kapso.mark_read(phone_number_id=connection.phone_number_id, wamid=wamid, typing=typing)
    except KapsoError as error:
        logger.info("could not mark %s read: %s", wamid, error)


def thread_set_handoff(*, thread: Thread, handoff: str) -> None:
    """A person takes the thread over, or gives it back. Giving it back ends the team's work on it:
    the request for a person, the reason and the assignment are cleared."""
    was = thread.handoff
    thread.handoff = handoff
    fields = ["handoff", "updated_at"]
    if handoff == Handoff.HUMAN:
        if was != Handoff.HUMAN:
            thread.handoff_at = timezone.now()
            fields.append("handoff_at")
    else:
        thread.handoff_reason, thread.needs_person_since, thread.assigned_to = "", None, None
        fields += ["handoff_reason", "needs_person_since", "assigned_to"]
    thread.save(update_fields=fields)


def thread_request_person(*, thread: Thread, reason: str) -> None:
    """The agent hands the thread to people (`conversation.handoff`): the agent stops answering and
    the thread waits, first in the inbox, until a person replies or gives it back."""
    now = timezone.now()
    Thread.objects.filter(pk=thread.pk).update(
        handoff=Handoff.HUMAN, handoff_reason=reason, handoff_at=now, needs_person_since=now, updated_at=now
    )
    thread.handoff, thread.handoff_reason, thread.handoff_at, thread.needs_person_since = (
        Handoff.HUMAN, reason, now, now)
    from .tasks import enqueue_handoff_notify

    transaction.on_commit(lambda: enqueue_handoff_notify(thread.pk))


def handoff_email_send(*, thread_id) -> int:
    """One email to each member of the thread's org who opted in; returns how many were sent.
    Sent after the handoff committed, so a failed email never undoes the handoff."""
    from django.core.mail import send_mass_mail
    from django.urls import reverse

    from apps.orgs.models import Membership

    # A playground thread is the agent being tried out in the dashboard: nobody is waiting there.
    thread = (Thread.objects.on_whatsapp().select_related("org")
              .filter(pk=thread_id, needs_person_since__isnull=False).first())
    if thread is None:
        return 0  # answered or given back meanwhile, or a playground
    emails = list(
        Membership.objects.filter(org_id=thread.org_id, email_on_handoff=True)
        .exclude(user__email="").values_list("user__email", flat=True)
    )
    if not emails:
        return 0
    link = settings.PUBLIC_BASE_URL + reverse("thread", args=[thread.org.slug, thread.pk])
    subject = f"A conversation needs a person: {thread}"
    body = (f"The agent handed the conversation with {thread} ({thread.contact_phone}) to your team.\n"
            f"Reason: {thread.get_handoff_reason_display()}\n\nOpen it: {link}\n\n"
            "You get this email because you asked for it on the Settings page of Switchboard.")
    # One message per person: members do not see each other's addresses.
    send_mass_mail([(subject, body, None, [email]) for email in emails])
    return len(emails)


# --- The outbox --------------------------------------------------------------------------------


def outbound_queue(
    *, thread: Thread, text: str, author: str, run_id: uuid.UUID | None = None, raw: dict | None = None,
    payload: dict | None = None, reply_to: str = "",
) -> list[Message]:
    """Record a reply as queued messages (split at 4,096 characters) and drain the thread's outbox
    once the transaction commits. The row exists before any attempt to send it. With `payload`
    (a template, an interactive message, media) it is one message and `text` is how it reads in
    the thread; `reply_to` quotes that wamid (the first part only, for a split text)."""
    from .tasks import enqueue_outbox_drain

    if thread.opted_out and author != Author.SYSTEM:
        # The contact wrote STOP: no agent, operator or scheduled message reaches them until START.
        logger.info("not queued: the contact of thread %s opted out", thread.id)
        return []
    now = timezone.now()
    chunks = [text] if payload else split_text(text)
    rows = [
        Message(
            org_id=thread.org_id, thread_id=thread.id, connection_id=thread.connection_id,
            direction=Direction.OUTBOUND, author=author, text=chunk, status=MessageStatus.QUEUED,
            run_id=run_id, created_at=now + timedelta(microseconds=index), raw=dict(raw or {}),
            type=(payload or {}).get("type", "text"), payload=dict(payload or {}),
            reply_to_wamid=reply_to if index == 0 else "",
        )
        for index, chunk in enumerate(chunks)
    ]
    Message.objects.bulk_create(rows)
    Thread.objects.filter(pk=thread.id).update(last_message_at=now)
    transaction.on_commit(lambda: enqueue_outbox_drain(thread.id))
    return rows


# The head of a thread's outbox and its claim in one statement: claiming was a SELECT, an UPDATE in
# its own transaction and a second SELECT to learn the retry time (7 round trips per send with the
# final "nothing left" call, now 1). The UPDATE re-checks `queued`: a concurrent claim of the same row
# makes it match nothing; another send in flight for the thread fails it on the unique index.
_OUTBOX_CLAIM = """
WITH head AS (
    SELECT id, next_attempt_at FROM conversations_message
    WHERE thread_id = %(thread)s AND direction = 'outbound' AND status = 'queued'
    ORDER BY created_at, id LIMIT 1
), claimed AS (
    UPDATE conversations_message m
    SET status = 'sending', sending_started_at = %(now)s, updated_at = %(now)s, send_attempts = m.send_attempts + 1
    FROM head
    WHERE m.id = head.id AND m.status = 'queued' AND (head.next_attempt_at IS NULL OR head.next_attempt_at <= %(now)s)
    RETURNING m.id
)
SELECT head.next_attempt_at, (SELECT id FROM claimed) FROM head
"""


def outbox_claim_next(*, thread_id: uuid.UUID) -> tuple[Message | None, datetime | None]:
    """Claim the oldest queued message of the thread. Returns (message, None), or (None, when) if
    the head waits for a retry time, or (None, None) if there is nothing to send now. Another send
    in flight for the thread makes the claim fail on a unique index: replies never overtake."""
    now = timezone.now()
    try:
        # Inside a caller's transaction a failed statement needs a savepoint; in autocommit (a
        # worker's task) the statement is its own transaction, so no BEGIN/COMMIT round trips.
        with transaction.atomic() if db.in_atomic_block else nullcontext():
            with db.cursor() as cursor:
                cursor.execute(_OUTBOX_CLAIM, {"thread": thread_id, "now": now})
                row = cursor.fetchone()
    except IntegrityError:
        return None, None
    if row is None:
        return None, None
    next_attempt_at, claimed_id = row
    if claimed_id is None:
        return None, (next_attempt_at if next_attempt_at and next_attempt_at > now else None)
    return Message.objects.select_related("thread", "connection").get(pk=claimed_id), None


def outbox_send(*, message: Message) -> float | None:
    """POST one claimed message to Kapso and record the outcome. Returns a delay in seconds when
    the message must be tried again later, else None."""
    connection = message.connection
    if connection.is_playground:
        # The playground's outbox: the person testing the agent reads it in the dashboard; it never
        # goes to Kapso, so it is sent as soon as it is claimed.
        _record_sent(message, wamid=None)
        return None
    if connection.status != ConnectionStatus.CONNECTED or not connection.phone_number_id:
        _mark_failed(message, code="not_connected", text="The WhatsApp number is not connected.")
        return None
    wait = pacing.reserve(connection_id=connection.id, thread_id=message.thread_id)
    if wait > 0:
        return _postpone(message, wait)
    try:
        content = _media_upload(message) if _needs_upload(message) else message_content(message)
    except KapsoError as error:
        return _record_send_error(message, error)  # nothing was sent: uploading again is harmless
    except MediaUnavailable as error:
        _mark_failed(message, code="media_missing", text=str(error))
        return None
    try:
        wamid = kapso.send_message(
            phone_number_id=connection.phone_number_id, to=message.thread.contact_phone,
            recipient=message.thread.contact_bsuid, content=content, reply_to=message.reply_to_wamid,
        )
    except KapsoError as error:
        if error.maybe_done:
            return _await_reconciliation(message, error)
        return _record_send_error(message, error)
    _record_sent(message, wamid)
    metrics.inc("switchboard_sends", outcome="sent", error_class="")
    return None


def message_content(message: Message) -> dict:
    """The type-specific part of the Meta-proxy send body: the stored payload, or the text."""
    return message.payload or {"type": "text", "text": {"body": message.text, "preview_url": False}}


def _needs_upload(message: Message) -> bool:
    """A file of ours (an operator's photo or document) that Kapso does not have yet."""
    kind = (message.payload or {}).get("type")
    body = (message.payload or {}).get(kind)
    return has_media(kind or "") and isinstance(body, dict) and not (body.get("id") or body.get("link")) and bool(
        message.media_file)


def _media_upload(message: Message) -> dict:
    """Upload the stored file through the Meta proxy (`POST /{phone_number_id}/media`) and return
    the send body with its media id. The id is kept on the row, so a retry sends without uploading
    again."""
    kind = message.payload["type"]
    with media_open(message) as file:
        data = file.read()
    media_id = kapso.upload_media(
        phone_number_id=message.connection.phone_number_id, content=data,
        filename=message.media.get("filename") or message.media_file.name.rsplit("/", 1)[-1],
        content_type=message.media.get("content_type") or "application/octet-stream",
    )
    message.payload = {**message.payload, kind: {**message.payload[kind], "id": media_id}}
    Message.objects.filter(pk=message.pk).update(payload=message.payload, updated_at=timezone.now())
    return message.payload


def _record_sent(message: Message, wamid: str | None) -> None:
    """Recorded whatever the sweeper did meanwhile: Kapso has it, so it must never go out again."""
    now = timezone.now()
    mine = Message.objects.filter(pk=message.pk).exclude(status__in=statuses_after_sent())
    changes = dict(status=MessageStatus.SENT, wamid=wamid, sent_at=now, updated_at=now, error_code="",
                   error_text="", next_attempt_at=None)
    try:
        mine.update(**changes)
    except IntegrityError:
        # Kapso's status webhook for this very send came first and, finding no wamid of ours, was
        # recorded as a message sent outside Switchboard: it was ours, so that copy gives way.
        with transaction.atomic():
            _outside_copy(message, wamid).delete()
            mine.update(**changes)


def _outside_copy(message: Message, wamid: str):
    return Message.objects.filter(connection_id=message.connection_id, wamid=wamid, author=Author.EXTERNAL).exclude(
        pk=message.pk
    )


def _postpone(message: Message, wait: float, error: KapsoError | None = None) -> float:
    """Not this message's turn yet (pacing, rate limit): back to the queue, due when its slot comes.
    The claim's attempt is given back."""
    why = {"error_code": error.code or str(error.status), "error_text": str(error)} if error else {}
    Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
        status=MessageStatus.QUEUED, next_attempt_at=timezone.now() + timedelta(seconds=wait),
        send_attempts=F("send_attempts") - 1, updated_at=timezone.now(), **why,
    )
    return wait


def _await_reconciliation(message: Message, error: KapsoError) -> None:
    """Kapso did not answer, but may have taken the message: sending it again could deliver it
    twice. It stays `sending`; once stale, the sweeper looks it up in Kapso's history and records
    it as sent, or queues it again if Kapso does not have it (_reconcile_sending)."""
    Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
        error_code="no_answer", error_text=str(error), updated_at=timezone.now()
    )
    logger.warning("send of %s got no answer (%s); left for the sweeper to look up in Kapso", message.pk, error)
    metrics.inc("switchboard_sends", outcome="unknown", error_class=_error_class(error))
    return None


def statuses_after_sent() -> list[str]:
    return [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED]


def _record_send_error(message: Message, error: KapsoError) -> float | None:
    if error.rate_limited:
        # Kapso's per-key budget is spent (or our limiter saw it coming): the message was not
        # looked at, so this costs it no attempt. A minute of throttling never fails a message.
        metrics.inc("switchboard_sends", outcome="postponed", error_class=_error_class(error))
        return _postpone(message, error.retry_after or 1.0, error=error)
    attempts = message.send_attempts  # loaded after the claim counted this attempt
    if error.transient and attempts < settings.OUTBOX_MAX_ATTEMPTS:
        delay = retry_delay(attempts, error.retry_after)
        Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
            status=MessageStatus.QUEUED, next_attempt_at=timezone.now() + timedelta(seconds=delay),
            error_code=error.code or str(error.status), error_text=str(error), updated_at=timezone.now(),
        )
        logger.info("send of %s will be retried in %.1fs: %s", message.pk, delay, error)
        metrics.inc("switchboard_sends", outcome="retry", error_class=_error_class(error))
        return delay
    _mark_failed(message, code=error.code or str(error.status), text=error.message)
    return None


def _error_class(error: KapsoError) -> str:
    """Kapso's or Meta's error code, else the HTTP status, else "network" (no answer at all)."""
    return error.code or (str(error.status) if error.status else "network")


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Exponential backoff, bounded; Kapso's Retry-After wins when it asks for longer."""
    backoff = settings.OUTBOX_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    return min(settings.OUTBOX_RETRY_MAX_SECONDS, max(backoff, retry_after or 0.0))


def _mark_failed(message: Message, *, code: str, text: str) -> None:
    Message.objects.filter(pk=message.pk, status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]).update(
        status=MessageStatus.FAILED, error_code=code[:32], error_text=text, next_attempt_at=None,
        updated_at=timezone.now(),
    )
    logger.warning("send of %s failed for good: %s %s", message.pk, code, text)
    metrics.inc("switchboard_sends", outcome="failed", error_class=code[:32])


def outbox_recover_stale(*, older_than: timedelta) -> list[uuid.UUID]:
    """Threads whose outbox needs a nudge: queued messages nobody picked up, and sends that were in
    flight when their worker died. A stale in-flight send is first looked up in Kapso's history:
    if Kapso has it, it is recorded as sent instead of being sent twice."""
    cutoff = timezone.now() - older_than
    stale_sending = Message.objects.filter(status=MessageStatus.SENDING, sending_started_at__lt=cutoff)
    # A thread whose send in flight is settled now may send what waits behind it at once.
    settled = [m.thread_id for m in stale_sending.select_related("thread", "connection")[:100] if _reconcile_sending(m)]
    due = Q(next_attempt_at__isnull=True, updated_at__lt=cutoff) | Q(next_attempt_at__lte=timezone.now())
    waiting = Message.objects.filter(due, status=MessageStatus.QUEUED, direction=Direction.OUTBOUND)
    return list(dict.fromkeys([*settled, *waiting.values_list("thread_id", flat=True).distinct()[:1000]]))


def _reconcile_sending(message: Message) -> bool:
    """A send with no answer, now stale: Kapso's history says whether it went out. Until the lookup
    succeeds the message stays `sending` (resending could deliver it twice); past
    OUTBOX_UNKNOWN_GIVE_UP_SECONDS it ends failed, unsent again, and the thread's outbox moves on.
    Returns whether the message left `sending`."""
    if message.connection.is_playground:
        _record_sent(message, wamid=None)  # its worker died between the claim and the record; Kapso is not involved
        return True
    try:
        rows = _sent_since(message)
    except KapsoError as error:
        logger.warning("cannot check Kapso history for stale send %s: %s", message.pk, error)
        if timezone.now() - message.sending_started_at <= timedelta(seconds=settings.OUTBOX_UNKNOWN_GIVE_UP_SECONDS):
            return False
        return bool(Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
            status=MessageStatus.FAILED, next_attempt_at=None, error_code="delivery_unknown",
            error_text=DELIVERY_UNKNOWN, updated_at=timezone.now(),
        ))
    wamid = _find_sent_copy(rows, message)
    changes = {"updated_at": timezone.now()}
    if wamid:
        changes.update(status=MessageStatus.SENT, wamid=wamid, sent_at=timezone.now(), error_code="", error_text="")
    elif message.send_attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        changes.update(status=MessageStatus.FAILED, next_attempt_at=None, error_code=message.error_code or "no_answer",
                       error_text=f"Kapso did not confirm this message in {message.send_attempts} attempts.")
    else:
        changes.update(status=MessageStatus.QUEUED, next_attempt_at=timezone.now())  # due at once
    with transaction.atomic():
        if wamid:
            _outside_copy(message, wamid).delete()  # recorded as sent outside Switchboard, but it was this one
        return bool(Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(**changes))


DELIVERY_UNKNOWN = "delivery unknown: not resent, to avoid a duplicate"
HISTORY_MAX_PAGES = 50  # 5,000 messages: far more than a number sends in the minutes a lookup covers


def _sent_since(message: Message) -> list[dict]:
    """Every outbound message in Kapso's history since a minute before the attempt, following the
    `after` cursor (newest first, 100 a page) so a busy number's older pages are not missed."""
    since = (message.sending_started_at - timedelta(minutes=1)).isoformat()
    return kapso.list_all_messages(
        phone_number_id=message.connection.phone_number_id, direction="outbound", since=since,
        max_pages=HISTORY_MAX_PAGES,
    )


def _same_content(row: dict, body: str | None, message: Message) -> bool:
    """A history row that reads like this message: the same text, or (a template, an interactive
    message, media) the same type and the same template name or interactive body."""
    if not message.payload:
        return body == message.text
    kind = message.payload.get("type")
    if row.get("type") != kind:
        return False
    mine, theirs = message.payload.get(kind) or {}, row.get(kind) if isinstance(row.get(kind), dict) else {}
    if kind == "template":
        return theirs.get("name") == mine.get("name")
    if kind == "interactive":
        return (theirs.get("body") or {}).get("text") == (mine.get("body") or {}).get("text")
    return True


def _find_sent_copy(rows: list, message: Message) -> str | None:
    """The wamid of a message in Kapso's history with this text to this contact that no other row
    of ours claims (the same text may have gone out before, e.g. a repeated fallback). A copy
    recorded as sent outside Switchboard does not count as claimed: it may be this very send."""
    thread = message.thread
    digits = (thread.contact_phone or "").lstrip("+")
    candidates = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        body = (row.get("text") or {}).get("body") if isinstance(row.get("text"), dict) else None
        to = str(row.get("to") or (row.get("kapso") or {}).get("phone_number") or "").lstrip("+")
        to_user = str(row.get("to_user_id") or "")
        same_contact = (to == digits) if (to and digits) else (not to_user or to_user == thread.contact_bsuid)
        if _same_content(row, body, message) and same_contact:
            candidates.append(row["id"])
    claimed = Message.objects.filter(connection_id=message.connection_id, wamid__in=candidates).exclude(
        author=Author.EXTERNAL
    )
    known = set(claimed.values_list("wamid", flat=True))
    return next((wamid for wamid in candidates if wamid not in known), None)


# --- Operator replies --------------------------------------------------------------------------


class ReplyRefused(Exception):
    """An operator reply that cannot go out; the message says why in words an operator can act on."""


def operator_reply(*, thread: Thread, text: str, sent_by: str = "") -> list[Message]:
    """A person's reply, from the dashboard or the API: the one path for both. It goes through the
    same outbox as the agent's answers (queued rows, split at 4,096 characters, sent in order), and
    is refused with nothing stored when WhatsApp would refuse it anyway (outside the 24-hour window,
    number not connected), so the operator learns it before sending, not from a failed tick.
    `sent_by` (who in the team wrote it) is kept in the rows' `raw` for the thread view. Replying
    does not change the handoff state: taking over is its own action."""
    from .selectors import reply_blocked_reason

    text = (text or "").strip()
    if not text:
        raise ReplyRefused("Write a message first.")
    reason = reply_blocked_reason(thread=thread)
    if reason:
        raise ReplyRefused(reason)
    with transaction.atomic():
        rows = outbound_queue(thread=thread, text=text, author=Author.OPERATOR,
                              raw={"sent_by": sent_by} if sent_by else None)
        # A person answered: the thread no longer waits for one, and the give-back clock restarts.
        now = timezone.now()
        Thread.objects.filter(pk=thread.pk).update(last_operator_reply_at=now, needs_person_since=None, updated_at=now)
        return rows


def operator_media_send(*, thread: Thread, file, caption: str = "", sent_by: str = "") -> Message:
    """A photo or a document from a person, from the dashboard or the API: checked against
    WhatsApp's types and limits (MediaRefused says what is wrong), kept in the media store, and
    queued like any operator reply (the same 24-hour window and connection checks, ReplyRefused).
    The outbox uploads it to Kapso and sends it by media id (`_media_upload`). `file` is an
    uploaded file (name, content_type, size, read())."""
    from .media import MAX_CAPTION_CHARS, MAX_FILENAME_CHARS, outgoing_check, stored_name
    from .selectors import reply_blocked_reason

    reason = reply_blocked_reason(thread=thread)
    if reason:
        raise ReplyRefused(reason)
    caption = (caption or "").strip()
    if len(caption) > MAX_CAPTION_CHARS:
        raise ReplyRefused(f"A caption can have at most {MAX_CAPTION_CHARS} characters (it has {len(caption)}).")
    filename = (getattr(file, "name", "") or "").rsplit("/", 1)[-1][-MAX_FILENAME_CHARS:]
    head = file.read(16)
    file.seek(0)
    kind, content_type = outgoing_check(filename=filename, content_type=getattr(file, "content_type", ""),
                                        size=file.size, head=head)
    body = {"caption": caption} if caption else {}
    if kind == "document":
        body["filename"] = filename or "document"
    label = "[Image]" if kind == "image" else f"[Document: {body['filename']}]"
    with transaction.atomic():
        rows = outbound_queue(thread=thread, text=f"{label} {caption}".strip(), author=Author.OPERATOR,
                              payload={"type": kind, kind: body}, raw={"sent_by": sent_by} if sent_by else None)
        if not rows:
            raise ReplyRefused("This customer opted out, so no message can be sent to them.")
        (row,) = rows
        row.media = {"filename": filename, "content_type": content_type, "byte_size": file.size,
                     **({"caption": caption} if caption else {})}
        row.media_file.save(stored_name(filename, kind, content_type), file, save=False)
        row.media_status = MediaStatus.STORED
        Message.objects.filter(pk=row.pk).update(media=row.media, media_file=row.media_file.name,
                                                 media_status=row.media_status)
        now = timezone.now()
        Thread.objects.filter(pk=thread.pk).update(last_operator_reply_at=now, needs_person_since=None, updated_at=now)
    return row


def template_send(
    *, thread: Thread, name: str, language: str, variables: list, author: str = Author.OPERATOR,
    sent_by: str = "", run_id: uuid.UUID | None = None,
) -> Message:
    """Queue an approved template: from the thread page, the API, a schedule or the agent. Allowed
    outside the 24-hour window (that is what templates are for); refused with a reason, nothing
    stored, when the number is not connected, the contact opted out, or the template is unknown,
    not approved, or given the wrong variables. Callable from a task (no request needed)."""
    from apps.whatsapp.templates import TemplateInvalid, template_payload

    from .selectors import reply_blocked_reason

    reason = reply_blocked_reason(thread=thread, template=True)
    if reason:
        raise ReplyRefused(reason)
    try:
        payload, preview = template_payload(connection=thread.connection, name=name, language=language,
                                            variables=variables)
    except TemplateInvalid as error:
        raise ReplyRefused(str(error)) from error
    with transaction.atomic():
        (row,) = outbound_queue(thread=thread, text=preview, author=author, run_id=run_id, payload=payload,
                                raw={"sent_by": sent_by} if sent_by else None)
        if author == Author.OPERATOR:
            now = timezone.now()
            Thread.objects.filter(pk=thread.pk).update(last_operator_reply_at=now, needs_person_since=None,
                                                       updated_at=now)
    return row
