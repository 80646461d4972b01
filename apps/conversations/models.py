from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Upper
from django.utils import timezone

from apps.core.models import OrgOwnedModel, OrgQuerySet
from apps.whatsapp.models import real_numbers


class Handoff(models.TextChoices):
    AGENT = "agent", "Agent"
    HUMAN = "human", "Human"


_LABELS = ArrayField(models.CharField(max_length=40))


class HandoffReason(models.TextChoices):
    """Why the agent handed a conversation to people: the fixed list of `conversation.handoff`."""

    CONTACT_ASKED = "contact_asked", "Asked for a person"
    CANNOT_ANSWER = "cannot_answer", "The agent cannot answer"
    COMPLAINT = "complaint", "Complaint"
    SALES = "sales", "Ready to buy / wants a quote"
    SENSITIVE = "sensitive", "Payment, account or legal matter"
    OTHER = "other", "Other"


class ThreadQuerySet(OrgQuerySet):
    def on_whatsapp(self):
        """Conversations on real WhatsApp numbers, without the agents' playground threads."""
        return self.filter(real_numbers("connection__"))


class Thread(OrgOwnedModel):
    # A playground thread is on its agent's playground connection (environment "playground").
    connection = models.ForeignKey("whatsapp.WhatsAppConnection", on_delete=models.CASCADE, related_name="threads")
    # "whatsapp:+<digits>" when the thread began with a known number, else "whatsapp:<BSUID>"; never changes.
    # "playground:<user id>" in a playground.
    external_id = models.CharField(max_length=120)
    contact_phone = models.CharField(max_length=32, null=True, blank=True)  # "+<digits>"; null when unknown
    # WhatsApp's business-scoped user id ("US.1349…") and @username, for contacts who hide their number.
    contact_bsuid = models.CharField(max_length=100, blank=True, default="")
    contact_username = models.CharField(max_length=100, blank=True, default="")
    contact_name = models.CharField(max_length=200, blank=True, default="")
    kapso_conversation_id = models.CharField(max_length=64, blank=True, default="")
    handoff = models.CharField(max_length=8, choices=Handoff.choices, default=Handoff.AGENT)
    last_inbound_at = models.DateTimeField(null=True, blank=True)  # drives the 24-hour window
    last_message_at = models.DateTimeField(null=True, blank=True)
    # Team work. `handoff_at`: when people last took the thread; `needs_person_since`: the agent
    # asked for a person and nobody has answered yet (the inbox shows these first).
    # Database defaults: the thread upsert is raw SQL that names only the columns it sets.
    handoff_reason = models.CharField(max_length=16, choices=HandoffReason.choices, blank=True, db_default="")
    handoff_at = models.DateTimeField(null=True, blank=True)
    needs_person_since = models.DateTimeField(null=True, blank=True)
    last_operator_reply_at = models.DateTimeField(null=True, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labels = ArrayField(models.CharField(max_length=40), blank=True, db_default=Value([], _LABELS))
    # Set when the contact wrote an opt-out keyword (STOP); cleared by an opt-in keyword (START).
    opted_out_at = models.DateTimeField(null=True, blank=True)
    # When the contact last got the fallback text because the organization's model budget ran out.
    budget_notice_at = models.DateTimeField(null=True, blank=True)

    objects = ThreadQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="thread_unique_external_id"),
            # Kapso's docs: match a contact by BSUID first. One thread per BSUID per number.
            models.UniqueConstraint(
                fields=["connection", "contact_bsuid"], condition=~Q(contact_bsuid=""), name="thread_unique_bsuid"
            ),
        ]
        indexes = [
            models.Index(fields=["org", "-last_message_at"], name="thread_org_activity"),
            models.Index(
                fields=["org", "needs_person_since"], condition=Q(needs_person_since__isnull=False),
                name="thread_needs_person",
            ),
            GinIndex(fields=["labels"], name="thread_labels"),
            models.Index(fields=["connection", "contact_phone"], name="thread_connection_phone"),
        ]

    @property
    def opted_out(self) -> bool:
        return self.opted_out_at is not None

    def __str__(self) -> str:
        return self.contact_name or self.contact_label

    @property
    def contact_label(self) -> str:
        """How to tell the contact apart without a name: the number, else the username, else the BSUID."""
        return self.contact_phone or self.contact_username or self.contact_bsuid


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class Author(models.TextChoices):
    CONTACT = "contact", "Contact"
    AGENT = "agent", "Agent"
    OPERATOR = "operator", "Operator"
    SYSTEM = "system", "System"
    # Sent through Kapso but not by Switchboard: Kapso's inbox, a workflow, a broadcast.
    EXTERNAL = "external", "Sent outside Switchboard"


class MessageStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    FAILED = "failed", "Failed"


# Outbound status only moves forward along this order; "failed" is terminal and may follow
# anything but "read" (Meta reports failures after "sent" and even after "delivered").
STATUS_ORDER = ["queued", "sending", "sent", "delivered", "read"]


def statuses_before(status: str) -> list[str]:
    if status == MessageStatus.FAILED:
        return ["queued", "sending", "sent", "delivered"]
    return STATUS_ORDER[: STATUS_ORDER.index(status)]


class MediaStatus(models.TextChoices):
    NONE = "", "No media"
    PENDING = "pending", "Being fetched"
    STORED = "stored", "Stored"
    FAILED = "failed", "Could not be fetched"
    EXPIRED = "expired", "Deleted after the retention period"


def media_upload_to(message: "Message", filename: str) -> str:
    return f"media/{message.org_id}/{message.id}/{filename}"


# An automatic notice (an acknowledgement, a reset confirmation, a refusal) carries its kind in
# `raw[NOTICE_KEY]`: operators see it in the thread, the model does not see it in the history.
NOTICE_KEY = "notice"


class Message(OrgOwnedModel):
    # Set by the caller when it matters: the parts of a split reply get consecutive microseconds so
    # they sort and send in order (auto_now_add would overwrite them in bulk_create).
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    connection = models.ForeignKey("whatsapp.WhatsAppConnection", on_delete=models.CASCADE, related_name="+")
    direction = models.CharField(max_length=8, choices=Direction.choices)
    author = models.CharField(max_length=8, choices=Author.choices)
    type = models.CharField(max_length=16, default="text")
    text = models.TextField(blank=True, default="")
    # {url, id, filename, content_type, byte_size, caption, transcript}
    media = models.JSONField(default=dict, blank=True)
    # Our own copy of the media bytes (apps/conversations/media.py): Kapso's links expire.
    media_status = models.CharField(max_length=8, choices=MediaStatus.choices, blank=True, default="")
    media_file = models.FileField(upload_to=media_upload_to, max_length=300, blank=True, default="")
    wamid = models.CharField(max_length=200, null=True, blank=True)
    # The wamid this message quotes: inbound, Kapso's `message.context.id`; outbound, the
    # `context.message_id` it is sent with (reply threading).
    reply_to_wamid = models.CharField(max_length=200, blank=True, default="")
    # Outbound other than plain text: the type and its object of the Meta-proxy send body, e.g.
    # {"type": "template", "template": {...}} or {"type": "interactive", "interactive": {...}}.
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=MessageStatus.choices)
    error_code = models.CharField(max_length=32, blank=True, default="")
    error_text = models.TextField(blank=True, default="")
    raw = models.JSONField(default=dict, blank=True)
    # The contact's reaction to this message (an emoji; "" when none or removed) and when they set it,
    # so a removal that arrives before the reaction it undoes is not overwritten by it.
    reaction = models.CharField(max_length=32, blank=True, default="")
    reaction_at = models.DateTimeField(null=True, blank=True)
    # Came in while Switchboard could not receive it and too late to answer automatically: for a person.
    needs_attention = models.BooleanField(default=False)
    # Inbound: the agent turn that answers this message. Outbound: the turn that wrote it.
    run = models.ForeignKey(
        "agents.AgentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    # Outbox bookkeeping.
    send_attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "wamid"], condition=Q(wamid__isnull=False), name="message_unique_wamid"
            ),
            # At most one send in flight per thread: replies go out in order, never two at once.
            models.UniqueConstraint(
                fields=["thread"], condition=Q(status="sending"), name="message_one_sending_per_thread"
            ),
        ]
        indexes = [
            models.Index(fields=["thread", "created_at"], name="message_thread_time"),
            models.Index(
                fields=["status", "updated_at"],
                condition=Q(status__in=["queued", "sending"]),
                name="message_outbox_pending",
            ),
            models.Index(fields=["updated_at"], condition=Q(media_status="pending"), name="message_media_pending"),
            # The open thread polls for what changed since its last look (new messages, ticks).
            models.Index(fields=["thread", "updated_at"], name="message_thread_updated"),
            # Inbox search by message text through trigrams (pg_trgm). On UPPER(text) because that is
            # what Django's `icontains` compares on PostgreSQL: UPPER(text) LIKE UPPER('%words%').
            GinIndex(OpClass(Upper("text"), name="gin_trgm_ops"), name="message_text_upper_trgm"),
        ]
        ordering = ["created_at", "id"]


class Note(OrgOwnedModel):
    """An internal note on a thread: seen by the team in the thread, never sent to the contact."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()

    class Meta:
        indexes = [models.Index(fields=["thread", "created_at"], name="note_thread_time")]


class CannedReply(OrgOwnedModel):
    """A ready answer of the organization, inserted in the reply box by typing `/` and its shortcut."""

    shortcut = models.SlugField(max_length=40)
    text = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "shortcut"], name="canned_reply_unique_shortcut")]
        ordering = ["shortcut"]


class ThreadErasure(OrgOwnedModel):
    """The audit entry of an erased conversation: who erased which thread and when, and how many
    messages went. Nothing of the content (no phone, no name, no text) is kept."""

    thread_ref = models.UUIDField()  # the erased thread's id, as the API and dashboard knew it
    erased_by = models.CharField(max_length=200)  # "owner@acme.test", or "API key sb_abc123"
    message_count = models.PositiveIntegerField(default=0)
