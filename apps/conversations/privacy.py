"""The data of contacts: export a thread, erase it, purge old payloads, STOP/START opt-out.

Erasing reaches every table that keeps a copy of what the contact sent or what was said to them:
the thread and its messages (with their raw payloads and stored media), the agent turns and tool
calls that answered them, tool calls of other threads that named the contact, and the webhook
receipts whose bodies carried them. Those last two live in apps to the right of this one
(agents, webhooks); they are reached through the app registry, on purpose: an erase that missed
a table would be worse than an import that bends the layering.
"""

import json
import logging
import re
import uuid
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone

from .models import Author, Message, Thread, ThreadErasure

logger = logging.getLogger(__name__)
ERASED_BODY = ""
_PUNCTUATION = re.compile(r"[\s.!¡?¿,;:]+")


# --- Export -------------------------------------------------------------------------------------


def thread_export(*, thread: Thread) -> dict:
    """Everything stored about one conversation, as JSON-ready data; media as links to the copies
    Switchboard serves to members (Kapso's own links expire). What erase removes, export shows:
    the contact's record (name, attributes), each message with its status, reaction, quoted message,
    what was sent (templates, buttons) and media (with transcript or document text), the agent's
    turns and tool calls, and the team's notes on the thread (about the contact, so theirs to see;
    without the author, who is staff)."""
    AgentRun = apps.get_model("agents", "AgentRun")
    Contact = apps.get_model("contacts", "Contact")
    messages = Message.objects.filter(thread=thread).order_by("created_at", "id")
    if thread.contact_phone:
        contact = Contact.objects.filter(org_id=thread.org_id, phone=thread.contact_phone).first()
    else:
        contact = Contact.objects.filter(org_id=thread.org_id, phone="", bsuid=thread.contact_bsuid).first() if (
            thread.contact_bsuid) else None
    runs = AgentRun.objects.filter(thread=thread).prefetch_related("tool_calls").order_by("created_at")
    return {
        "exported_at": timezone.now().isoformat(),
        "thread": {
            "id": str(thread.id),
            "external_id": thread.external_id,
            "contact_phone": thread.contact_phone,
            "contact_name": thread.contact_name,
            "contact_bsuid": thread.contact_bsuid,
            "contact_username": thread.contact_username,
            "handoff": thread.handoff,
            "opted_out": thread.opted_out,
            "created_at": thread.created_at.isoformat(),
            "whatsapp_number": thread.connection.display_phone_number if thread.connection else None,
        },
        "contact": _contact_export(contact) if contact else None,
        "messages": [_message_export(m, thread.org.slug) for m in messages],
        "agent_runs": [_run_export(run) for run in runs],
        "notes": [{"at": n.created_at.isoformat(), "text": n.text} for n in thread.notes.order_by("created_at")],
    }


def _contact_export(contact) -> dict:
    return {"name": contact.name, "phone": contact.phone, "bsuid": contact.bsuid, "attributes": contact.attributes,
            "last_seen_at": contact.last_seen_at.isoformat() if contact.last_seen_at else None,
            "created_at": contact.created_at.isoformat()}


def _message_export(message: Message, org_slug: str) -> dict:
    data = {
        "id": str(message.id),
        "at": message.created_at.isoformat(),
        "direction": message.direction,
        "author": message.author,
        "type": message.type,
        "text": message.text,
        "status": message.status,
        "wamid": message.wamid,
        "error_code": message.error_code,
        "error_text": message.error_text,
        "reaction": message.reaction,
        "reaction_at": message.reaction_at.isoformat() if message.reaction_at else None,
        "reply_to_wamid": message.reply_to_wamid,
    }
    if message.payload:
        data["payload"] = message.payload
    if message.media:
        media = {k: v for k, v in message.media.items() if k not in ("url", "id")}  # Kapso's expire
        media["link"] = _media_link(message, org_slug) if message.media_file else None
        data["media"] = media
    return data


def _media_link(message: Message, org_slug: str) -> str:
    path = reverse(
        "message-media",
        kwargs={"org_slug": org_slug, "thread_id": str(message.thread_id), "message_id": str(message.id)},
    )
    return settings.PUBLIC_BASE_URL + path


def _run_export(run) -> dict:
    return {
        "id": str(run.id),
        "at": run.created_at.isoformat(),
        "status": run.status,
        "error": run.error,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "tool_calls": [
            {
                "name": c.name,
                "arguments": c.arguments,
                "result": c.result,
                "error": c.error,
                "at": c.created_at.isoformat(),
            }
            for c in run.tool_calls.all()
        ],
    }


# --- Erase --------------------------------------------------------------------------------------


def thread_erase(*, thread: Thread, erased_by: str) -> ThreadErasure:
    """Delete the conversation and every copy of it; leave only an audit entry saying who erased
    which thread and when (no phone, no name, no text)."""
    Agent, ToolCall = apps.get_model("agents", "Agent"), apps.get_model("agents", "ToolCall")
    WebhookEvent = apps.get_model("webhooks", "WebhookEvent")
    # What identifies the contact in copies we do not parse: the number (as Kapso writes it, without
    # "+"), the BSUID and the username (contacts without a known number).
    identifiers = [
        i for i in ((thread.contact_phone or "").lstrip("+"), thread.contact_bsuid, thread.contact_username) if i
    ]
    with transaction.atomic():
        thread = Thread.objects.select_for_update().get(pk=thread.pk)
        messages = Message.objects.filter(thread=thread)
        wamids = [w for w in messages.exclude(wamid=None).values_list("wamid", flat=True)]
        files = [m.media_file.name for m in messages.exclude(media_file="").only("media_file")]
        message_count = messages.count()
        # Receipts of deliveries that carried this contact (the number, or one of its messages).
        carried = Q(pk__in=[])
        for needle in [*identifiers, *wamids]:
            carried |= Q(body__contains=needle)
        needles = [*identifiers, *wamids, thread.kapso_conversation_id]
        for event in WebhookEvent.objects.filter(carried, org_id=thread.org_id).only("pk", "body"):
            _webhook_body_erase(WebhookEvent, event, [n for n in needles if n])
        # Tool calls of other conversations that named this contact (allowed_numbers).
        named = ToolCall.objects.annotate(args=Cast("arguments", TextField()), res=Cast("result", TextField()))
        naming = Q(pk__in=[])
        for needle in identifiers:
            naming |= Q(args__contains=needle) | Q(res__contains=needle)
        named.filter(naming, org_id=thread.org_id).update(arguments={"erased": True}, result=None, error="")
        # An agent allowed to reach this number forgets it too: the number is the contact's data.
        phone = thread.contact_phone or ""
        for agent in Agent.objects.filter(org_id=thread.org_id, allowed_numbers__contains=[phone]) if phone else []:
            agent.allowed_numbers = [n for n in agent.allowed_numbers if n != phone]
            agent.save(update_fields=["allowed_numbers", "updated_at"])
        # The contact's record (name, number, attributes) is their data too.
        Contact = apps.get_model("contacts", "Contact")
        if phone:
            Contact.objects.filter(org_id=thread.org_id, phone=phone).delete()
        elif thread.contact_bsuid:
            Contact.objects.filter(org_id=thread.org_id, phone="", bsuid=thread.contact_bsuid).delete()
        thread_ref = thread.pk
        thread.delete()  # messages, runs and their tool calls go with it (CASCADE)
        erasure = ThreadErasure.objects.create(
            org_id=thread.org_id, thread_ref=thread_ref, erased_by=erased_by[:200], message_count=message_count
        )
        transaction.on_commit(lambda: _delete_files(files))
    logger.info("thread %s erased by %s (%d messages)", erasure.thread_ref, erasure.erased_by, message_count)
    return erasure


def _webhook_body_erase(WebhookEvent, event, needles: list[str]) -> None:
    """A delivery of this contact alone loses its whole body (and headers). A batch (`{"batch": true,
    "data": [...]}`) loses only the contact's items: the other contacts' stay, with `batch_info`
    counting what is left. Whatever still names the contact after that is erased whole."""
    try:
        body = json.loads(event.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("batch") and isinstance(body.get("data"), list):
        kept = [item for item in body["data"] if not any(n in json.dumps(item, ensure_ascii=False) for n in needles)]
        body["data"] = kept
        if isinstance(body.get("batch_info"), dict):
            body["batch_info"]["size"] = len(kept)
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        if kept and not any(n in text for n in needles):
            WebhookEvent.objects.filter(pk=event.pk).update(
                body=text, detail="The parts of this batch about an erased contact were removed.")
            return
    WebhookEvent.objects.filter(pk=event.pk).update(
        body=ERASED_BODY, headers={}, detail="The body was erased with a contact's data.")


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("could not delete a stored media file of an erased thread")


# --- Retention ----------------------------------------------------------------------------------


def retention_purge(*, now=None) -> dict:
    """Raw webhook bodies and raw message payloads after RAW_PAYLOAD_RETENTION_DAYS; whole messages
    (and the turns that answered them) only when MESSAGE_RETENTION_DAYS is set."""
    WebhookEvent = apps.get_model("webhooks", "WebhookEvent")
    AgentRun = apps.get_model("agents", "AgentRun")
    now = now or timezone.now()
    raw_cutoff = now - timedelta(days=settings.RAW_PAYLOAD_RETENTION_DAYS)
    done = {
        "webhook_bodies": WebhookEvent.objects.filter(created_at__lt=raw_cutoff)
        .exclude(body=ERASED_BODY)
        .update(body=ERASED_BODY, headers={}),
        # An operator reply's raw holds only who sent it; that stays.
        "message_payloads": Message.objects.filter(created_at__lt=raw_cutoff)
        .exclude(raw={})
        .exclude(raw__has_key="sent_by")
        .update(raw={}),
        "messages": 0,
    }
    if settings.MESSAGE_RETENTION_DAYS:
        cutoff = now - timedelta(days=settings.MESSAGE_RETENTION_DAYS)
        AgentRun.objects.filter(created_at__lt=cutoff, status__in=["succeeded", "failed", "skipped"]).delete()
        done["messages"], _ = (
            Message.objects.filter(created_at__lt=cutoff).exclude(status__in=["queued", "sending"]).delete()
        )
    return done


# --- Opt-out ------------------------------------------------------------------------------------


def _keyword(text: str) -> str:
    return _PUNCTUATION.sub(" ", text or "").strip().casefold()


def opt_keyword(text: str) -> str:
    """'stop', 'start' or '' for a message that is exactly one of the configured keywords."""
    word = _keyword(text)
    if word and word in {_keyword(k) for k in settings.OPT_OUT_KEYWORDS}:
        return "stop"
    if word and word in {_keyword(k) for k in settings.OPT_IN_KEYWORDS}:
        return "start"
    return ""


def thread_apply_opt_keyword(*, thread_id: uuid.UUID, text: str) -> bool | None:
    """A contact's message that is a STOP or START keyword changes the thread's opt-out state and
    is confirmed once (a repeated STOP is not confirmed again). Returns the new opted-out state, or
    None when the message is not a keyword. Call inside the webhook's transaction."""
    from .services import outbound_queue

    keyword = opt_keyword(text)
    if not keyword:
        return None
    opting_out = keyword == "stop"
    thread = Thread.objects.select_for_update().get(pk=thread_id)
    if thread.opted_out == opting_out:
        return opting_out
    thread.opted_out_at = timezone.now() if opting_out else None
    thread.save(update_fields=["opted_out_at", "updated_at"])
    confirmation = settings.OPT_OUT_CONFIRMATION if opting_out else settings.OPT_IN_CONFIRMATION
    outbound_queue(thread=thread, text=confirmation, author=Author.SYSTEM)
    return opting_out
