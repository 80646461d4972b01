"""The sandbox's state: what a Kapso project holds. Its own tables, never joined with the product's."""

import uuid

from django.db import models


class Customer(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    external_customer_id = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class SetupLinkStatus(models.TextChoices):
    ACTIVE = "active"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


class SetupLink(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="setup_links")
    token = models.CharField(max_length=64, unique=True)
    url = models.URLField(max_length=500)
    status = models.CharField(max_length=8, choices=SetupLinkStatus.choices, default=SetupLinkStatus.ACTIVE)
    options = models.JSONField(default=dict)  # the create request's fields, echoed back
    expires_at = models.DateTimeField()
    whatsapp_setup_status = models.CharField(max_length=12, default="pending")
    whatsapp_setup_error = models.TextField(null=True, blank=True)
    phone_number = models.ForeignKey("PhoneNumber", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.token


class FailureKind(models.TextChoices):
    """What the next sends of a number answer (the phone page's controls)."""

    OUTSIDE_WINDOW = "131047", "422 · 131047 outside the 24-hour window"
    RATE_LIMITED = "429", "429 · rate limited, with Retry-After"
    SERVER_ERROR = "500", "500 · Kapso server error"
    IN_FLIGHT = "409", "409 · another message in flight"
    NO_CREDITS = "402", "402 · insufficient_credits (Kapso balance), with billing_url"
    MARKETING_STOPPED = "422-mkt", "422 · marketing_preference_stopped"
    ACCOUNT_MISMATCH = "422-acct", "422 · messaging_account_mismatch"
    FAILED_LATER = "failed", "200, then a whatsapp.message.failed webhook (131047)"


class PhoneNumber(models.Model):
    internal_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    phone_number_id = models.CharField(max_length=32, unique=True)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="numbers")
    name = models.CharField(max_length=200)
    display_phone_number = models.CharField(max_length=32)  # "+1 555-013-2468"
    normalized = models.CharField(max_length=20)  # "15550132468"
    business_account_id = models.CharField(max_length=32)
    is_coexistence = models.BooleanField(default=False)
    fail_kind = models.CharField(max_length=8, choices=FailureKind.choices, blank=True, default="")
    fail_remaining = models.PositiveSmallIntegerField(default=0)
    fail_retry_after = models.PositiveIntegerField(default=60)
    # A simulated outage of the receiving side: until then every delivery attempt fails, and Kapso's
    # retry schedule runs out as it does after a real one (the messages stay in the history).
    outage_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.display_phone_number


class Webhook(models.Model):
    """A project webhook (phone_number empty) or a number's webhook."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    phone_number = models.ForeignKey(PhoneNumber, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="webhooks")
    url = models.URLField(max_length=500)
    secret_key = models.CharField(max_length=500, blank=True, default="")
    kind = models.CharField(max_length=8, default="kapso")
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    headers = models.JSONField(default=dict)
    buffer_enabled = models.BooleanField(default=False)
    buffer_window_seconds = models.PositiveSmallIntegerField(null=True, blank=True)
    max_buffer_size = models.PositiveSmallIntegerField(null=True, blank=True)
    buffer_events = models.JSONField(default=list)
    inactivity_minutes = models.PositiveIntegerField(default=60)
    payload_version = models.CharField(max_length=4, default="v2")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class Conversation(models.Model):
    """Kapso's session per (number, contact)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    phone_number = models.ForeignKey(PhoneNumber, on_delete=models.CASCADE, related_name="conversations")
    contact_phone = models.CharField(max_length=20)  # digits
    contact_name = models.CharField(max_length=200, blank=True, default="")
    # A contact who adopted a WhatsApp username: Kapso then hides the number and sends the BSUID.
    contact_username = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=8, default="active")
    last_active_at = models.DateTimeField()
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_outbound_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["phone_number", "contact_phone", "status"])]

    def __str__(self) -> str:
        return self.contact_phone


class Message(models.Model):
    """A message of a sandbox number. The integer id orders history and makes cursors."""

    wamid = models.CharField(max_length=200, unique=True)
    phone_number = models.ForeignKey(PhoneNumber, on_delete=models.CASCADE, related_name="messages")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=8)  # inbound | outbound
    type = models.CharField(max_length=16, default="text")
    content = models.JSONField(default=dict)  # the type object: {"body": "..."} for text
    text = models.TextField(blank=True, default="")  # a readable rendering (kapso.content)
    status = models.CharField(max_length=10)  # inbound: received | read; outbound: pending … read | failed
    origin = models.CharField(max_length=16, default="cloud_api")
    statuses = models.JSONField(default=list)  # Meta's raw status history, oldest first
    context_id = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["phone_number", "-id"]), models.Index(fields=["conversation", "-id"])]

    def __str__(self) -> str:
        return self.wamid


class Media(models.Model):
    """A file the business uploaded to send (`POST /{phone_number_id}/media`); its id goes in a send."""

    media_id = models.CharField(max_length=32, primary_key=True)
    phone_number = models.ForeignKey(PhoneNumber, on_delete=models.CASCADE, related_name="uploads")
    mime_type = models.CharField(max_length=120)
    filename = models.CharField(max_length=255, blank=True, default="")
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.media_id


class DeliveryStatus(models.TextChoices):
    BUFFERING = "buffering"  # messages gathering for a batch
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(models.Model):
    """One webhook delivery; its id is the X-Idempotency-Key, the same on every retry."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    phone_number_id = models.CharField(max_length=32, blank=True, default="")
    event = models.CharField(max_length=64)
    body = models.TextField(blank=True, default="")  # the exact bytes sent (UTF-8), fixed at creation
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    batch = models.BooleanField(default=False)
    items = models.JSONField(default=list)  # buffering: the payloads waiting for the batch
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    flush_at = models.DateTimeField(null=True, blank=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open batch per webhook and conversation: new messages join it.
            models.UniqueConstraint(fields=["webhook", "conversation"], condition=models.Q(status="buffering"),
                                    name="sandbox_one_open_batch"),
        ]

    def __str__(self) -> str:
        return self.event
