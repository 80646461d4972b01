from django.db import models

from apps.core.models import TimeStampedModel


class WebhookKind(models.TextChoices):
    PROJECT = "project", "Project"
    MESSAGES = "messages", "Messages"


class ProcessingResult(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class WebhookEvent(TimeStampedModel):
    """The durable receipt of every signed delivery; replayable from the dashboard."""

    org = models.ForeignKey("orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "whatsapp.WhatsAppConnection", null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_events"
    )
    kind = models.CharField(max_length=10, choices=WebhookKind.choices)
    event = models.CharField(max_length=100)
    idempotency_key = models.CharField(max_length=200, unique=True)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    signature_valid = models.BooleanField(default=True)
    result = models.CharField(max_length=10, choices=ProcessingResult.choices, default=ProcessingResult.PENDING)
    detail = models.TextField(blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["org", "-created_at"], name="webhook_org_time"),
            models.Index(fields=["connection", "-created_at"], name="webhook_connection_time"),
        ]
