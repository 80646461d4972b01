from django.db import models


class BaselineDelivery(models.Model):
    """One row per accepted delivery, deduplicated by its idempotency key (like WebhookEvent)."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.idempotency_key
